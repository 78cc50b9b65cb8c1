"""``pg_dump --format=custom --compress=0``, streamed into a writable.

Uncompressed: monarch compresses the stream itself (the store's gzip or zstd, on its own thread
of work beside pg_dump), which measured faster than pg_dump's built-in zlib and leaves a file
that ``gzip -dc``/``zstd -dc`` turn back into a plain custom-format dump
(docs/postgres-sqlite.md, "Backups").

The dump leaves out the rows of ``monarch_lock`` (who holds this database's migration lock is
not data, and a restored row would name a holder that never held the copy) and the audit
trail, ``monarch_events`` (the environment's, not its data's: a restore keeps the target's); the
lock table itself, and the migration history, are dumped like any other.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

from monarch.engines.base import CollectionDump, DumpStats
from monarch.engines.postgres.conninfo import child_environment
from monarch.engines.postgres.errors import tool_failed, translated
from monarch.engines.postgres.history import EVENTS_TABLE
from monarch.engines.postgres.lock import LOCK_TABLE
from monarch.engines.postgres.tools import CHUNK, Tool, find_tool
from monarch.progress import Item, NullProgress

if TYPE_CHECKING:
    from monarch.engines.postgres import PostgresEngine
    from monarch.io import Writable
    from monarch.progress import Progress

# Rows as the planner knows them (reltuples, or the statistics collector's count for a table
# never analyzed): free to read, where counting would scan every table a second time.
_TABLES = """
SELECT n.nspname || '.' || c.relname,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE coalesce(s.n_live_tup, 0) END,
       pg_table_size(c.oid)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1
"""


def dump_command(engine: PostgresEngine) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and version of the pg_dump that dumps ``engine``'s database."""
    path, version = find_tool("pg_dump", engine.server_version())
    env, dbname = child_environment(engine.environment)
    argv = [
        str(path),
        "--format=custom",
        "--compress=0",
        "--no-password",  # never prompt on a terminal: fail instead
        f"--exclude-table-data={LOCK_TABLE}",
        f"--exclude-table={EVENTS_TABLE}",
        f"--dbname={dbname}",
    ]
    return argv, env, version


def dump(
    engine: PostgresEngine,
    out: Writable,
    *,
    progress: Progress | None = None,
    action: str = "backup",
) -> DumpStats:
    """Stream the database as pg_dump's custom format into ``out`` (see PostgresEngine.dump).

    ``progress`` hears ``start(action, ...)`` with one item, the database, advanced by the bytes
    written, and its ``finish_item`` at the end. The tables' statistics are the planner's.
    """
    started = time.monotonic()
    database = engine.environment.database
    progress = progress or NullProgress()
    server = engine.server_info()
    with translated(engine.environment, "reading table statistics"):
        rows = engine.connection.execute(_TABLES).fetchall()
    tables = tuple(
        CollectionDump(str(name), "table", max(0, int(n)), int(size), 0) for name, n, size in rows
    )
    argv, env, version = dump_command(engine)
    progress.start(action, [Item(database, None, None, unit="database")])
    tool = Tool(argv, env, stdout=subprocess.PIPE)
    try:
        assert tool.process.stdout is not None
        fd = tool.process.stdout.fileno()
        while chunk := os.read(fd, CHUNK):
            out.write(chunk)
            progress.advance(database, 0, len(chunk))
        status = tool.wait()
    except BaseException:
        tool.kill()
        raise
    if status != 0:
        raise tool_failed(engine.environment, "pg_dump", status, tool.stderr)
    progress.finish_item(database)
    return DumpStats(
        database=database,
        server=server,
        collections=tables,
        seconds=time.monotonic() - started,
        parallel=1,
        tool_version=version,
    )
