"""What monarch's backup layer asks of a PostgreSQL engine beyond dump and restore: an
uncompressed dump with table statistics, a server identity, and a check of a stored dump.

The dump is taken with ``--compress=0``: monarch compresses the stream itself (the store's
gzip or zstd, on its own thread of work beside pg_dump), which measured faster than pg_dump's
built-in zlib and leaves a file that ``gzip -dc``/``zstd -dc`` turn back into a plain
custom-format dump (docs/postgres-sqlite.md, "Backups").
"""

from __future__ import annotations

import logging
import subprocess
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from monarch.engines.base import StreamDump, TableStats
from monarch.engines.postgres.errors import translated
from monarch.engines.postgres.tools import CHUNK, Tool, find_tool
from monarch.errors import BackupError

if TYPE_CHECKING:
    from monarch.engines.postgres import PostgresEngine
    from monarch.io import Readable, Writable

log = logging.getLogger("monarch.backups")

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


def dump_stream(engine: PostgresEngine, out: Writable) -> StreamDump:
    """``pg_dump --format=custom --compress=0`` into ``out``, with the tables' statistics."""
    server = engine.server_info()
    with translated(engine.environment, "reading table statistics"):
        rows = engine.connection.execute(_TABLES).fetchall()
    tables = tuple(TableStats(str(name), max(0, int(n)), int(size)) for name, n, size in rows)
    result = engine.dump(out, compress=0)
    return StreamDump(
        format=result.format,
        bytes=result.bytes,
        server=server,
        tool_version=result.tool_version,
        tables=tables,
        seconds=result.seconds,
    )


def identity(engine: PostgresEngine) -> tuple[str, str]:
    """(server identity, database name): the cluster's ``system_identifier`` where the role may
    read it, else the server's own address and port as it sees them."""
    import psycopg

    conn = engine.connection
    with translated(engine.environment, "identifying the server"):
        database = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        try:
            with conn.transaction():
                row: Any = conn.execute(
                    "SELECT system_identifier FROM pg_control_system()"
                ).fetchone()
            return f"system {row[0]}", database
        except psycopg.errors.InsufficientPrivilege:
            pass
        row = conn.execute(
            "SELECT inet_server_addr()::text, inet_server_port(), "
            "current_setting('data_directory', true)"
        ).fetchone()
    return f"{row[0] or 'socket'}:{row[1]}:{row[2] or ''}", database


def same_database(engine: PostgresEngine, other: object) -> bool:
    """Whether ``other`` is a PostgreSQL engine on the same server and database."""
    from monarch.engines.postgres import PostgresEngine

    if not isinstance(other, PostgresEngine):
        return False
    return identity(engine) == identity(other)


def check_stream(inp: Readable) -> list[str]:
    """Read a custom-format dump from ``inp`` through ``pg_restore --file=/dev/null`` (every
    block decoded, nothing restored); the problems found. Reads ``inp`` to its end."""
    try:
        path, _ = find_tool("pg_restore", 0)
    except BackupError as exc:
        log.warning("not checking the dump's structure: %s", exc.message)
        _drain(inp)
        return []
    tool = Tool([str(path), "--file=/dev/null"], {}, stdin=subprocess.PIPE)
    assert tool.process.stdin is not None
    try:
        with suppress(BrokenPipeError):  # pg_restore stopped: its status says why
            while chunk := inp.read(CHUNK):
                tool.process.stdin.write(chunk)
            tool.process.stdin.close()
        status = tool.wait()
    except BaseException:
        tool.kill()
        raise
    _drain(inp)
    if status != 0:
        lines = [line for line in tool.stderr.splitlines() if line.strip()]
        return [f"pg_restore cannot read the dump: {'; '.join(lines[-3:]) or f'status {status}'}"]
    return []


def _drain(inp: Readable) -> None:
    while inp.read(CHUNK):
        pass
