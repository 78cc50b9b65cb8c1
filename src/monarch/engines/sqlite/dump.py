"""The dump of a SQLite database: SQLite's online backup API, then the copy streamed out.

``sqlite3.Connection.backup`` copies the database, in one step, into a temporary file, which is
then streamed out uncompressed (monarch compresses). One step means one read transaction: the
copy is a consistent snapshot however much the application writes meanwhile (in WAL mode writers
carry on; in rollback-journal mode they wait for the copy, a busy timeout's worth at most).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from monarch.engines.base import CollectionDump, DumpStats
from monarch.engines.sqlite.errors import check_file, translated
from monarch.engines.sqlite.files import BUSY_TIMEOUT, fsync_file
from monarch.progress import Item, NullProgress

if TYPE_CHECKING:
    from monarch.config import Environment
    from monarch.engines.sqlite import SQLiteEngine
    from monarch.io import Writable
    from monarch.progress import Progress

CHUNK = 1024 * 1024
HEADER = b"SQLite format 3\x00"
"""The first bytes of every SQLite database file."""


def dump(
    engine: SQLiteEngine,
    out: Writable,
    *,
    progress: Progress | None = None,
    action: str = "backup",
) -> DumpStats:
    """Write a consistent copy of the database file to ``out`` (see the module doc).

    ``progress`` hears ``start(action, ...)`` with one item, the database, advanced by the bytes
    written, and its ``finish_item`` at the end. Each table's rows are counted on the copy.
    """
    started = time.monotonic()
    env = engine.environment
    database = env.database
    progress = progress or NullProgress()
    server = engine.server_info()
    source = check_file(env, must_exist=True)
    progress.start(action, [Item(database, None, None, unit="database")])
    with tempfile.TemporaryDirectory(prefix="monarch-sqlite-") as folder:
        copy = Path(folder) / "dump.sqlite"
        snapshot(env, source, copy)
        tables = list_tables(env, copy)
        rows = row_counts(env, copy)
        with copy.open("rb") as file:
            while chunk := file.read(CHUNK):
                out.write(chunk)
                progress.advance(database, 0, len(chunk))
    progress.finish_item(database)
    return DumpStats(
        database=database,
        server=server,
        collections=tuple(
            CollectionDump(name, "table", rows.get(name, 0), 0, 0) for name in tables
        ),
        seconds=time.monotonic() - started,
        parallel=1,
        tool_version=f"sqlite3 {sqlite3.sqlite_version}",
    )


def snapshot(env: Environment, source: Path, dest: Path) -> None:
    """Copy database ``source`` into the new file ``dest`` with SQLite's online backup API."""
    with translated(env, "copying the database"):
        src = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True, timeout=BUSY_TIMEOUT)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)  # all pages in one step: one consistent snapshot
            finally:
                dst.close()
        finally:
            src.close()
    fsync_file(dest)


def list_tables(env: Environment, path: Path) -> tuple[str, ...]:
    """The tables and views of the database file ``path``, by name (SQLite's own left out)."""
    with translated(env, "listing tables"):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=BUSY_TIMEOUT)
        try:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            ).fetchall()
        finally:
            conn.close()
    return tuple(str(row[0]) for row in rows)


def row_counts(env: Environment, path: Path) -> dict[str, int]:
    """Rows of each table (not view) of the database file ``path``, counted."""
    with translated(env, "counting rows"):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            names = [
                str(r[0])
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                )
            ]
            counts = {}
            for name in names:
                quoted = '"{}"'.format(name.replace('"', '""'))
                counts[name] = int(conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
            return counts
        finally:
            conn.close()
