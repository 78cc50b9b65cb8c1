"""``pg_dump --format=custom``, streamed into a writable.

The dump leaves out the rows of ``monarch_lock`` (who holds this database's migration lock is
not data, and a restored row would name a holder that never held the copy); the table itself,
and the migration history, are dumped like any other.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monarch.engines.postgres.conninfo import child_environment
from monarch.engines.postgres.errors import tool_failed
from monarch.engines.postgres.lock import LOCK_TABLE
from monarch.engines.postgres.tools import CHUNK, Tool, find_tool
from monarch.io import Writable

if TYPE_CHECKING:
    from monarch.engines.postgres import PostgresEngine

FORMAT = "pg_dump-custom"


@dataclass(frozen=True)
class DumpResult:
    """What :meth:`PostgresEngine.dump` wrote: ``bytes`` of ``format`` from ``database``."""

    database: str
    format: str
    bytes: int
    seconds: float
    server_version: str
    tool_version: str


def dump_command(
    engine: PostgresEngine, *, compress: int | None = None
) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and version of the pg_dump that dumps ``engine``'s database."""
    path, version = find_tool("pg_dump", engine.server_version())
    env, dbname = child_environment(engine.environment)
    argv = [
        str(path),
        "--format=custom",
        "--no-password",  # never prompt on a terminal: fail instead
        f"--exclude-table-data={LOCK_TABLE}",
        f"--dbname={dbname}",
    ]
    if compress is not None:
        argv.append(f"--compress={compress}")
    return argv, env, version


def dump(engine: PostgresEngine, out: Writable, *, compress: int | None = None) -> DumpResult:
    """Stream the database as pg_dump's custom format into ``out`` (see PostgresEngine.dump)."""
    started = time.monotonic()
    server = engine.server_info().version
    argv, env, version = dump_command(engine, compress=compress)
    tool = Tool(argv, env, stdout=subprocess.PIPE)
    size = 0
    try:
        assert tool.process.stdout is not None
        fd = tool.process.stdout.fileno()
        while chunk := os.read(fd, CHUNK):
            out.write(chunk)
            size += len(chunk)
        status = tool.wait()
    except BaseException:
        tool.kill()
        raise
    if status != 0:
        raise tool_failed(engine.environment, "pg_dump", status, tool.stderr)
    return DumpResult(
        database=engine.environment.database,
        format=FORMAT,
        bytes=size,
        seconds=time.monotonic() - started,
        server_version=server,
        tool_version=version,
    )
