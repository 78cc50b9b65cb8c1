"""A SQLite database's fingerprint: each table's columns, indexes and sorted rows.

Read on a read-only connection of its own (the migrations' connection and its accounting are
left alone). A table's definition is its columns as ``PRAGMA table_info`` gives them (not the
``CREATE`` text, which ``ALTER TABLE`` edits in place) and its indexes' statements by name;
its rows are sorted by every column (SQLite orders values of any type), each encoded by its
Python ``repr`` (type and value), streamed from the cursor.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING
from urllib.parse import quote

from monarch.engines.base import Fingerprint, fingerprint_of
from monarch.engines.sqlite.errors import translated
from monarch.engines.sqlite.files import BUSY_TIMEOUT
from monarch.engines.sqltext import quote_identifier
from monarch.history import BOOKKEEPING

if TYPE_CHECKING:
    from pathlib import Path

    from monarch.config import Environment


def fingerprint(env: Environment, path: Path) -> dict[str, Fingerprint]:
    """Each table's fingerprint, monarch's own left out (see the module doc)."""
    with translated(env, "reading rows for a fingerprint"):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT)
        try:
            names = [str(row[0]) for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
            return {name: _table(conn, name) for name in names if name not in BOOKKEEPING}
        finally:
            conn.close()


def _table(conn: sqlite3.Connection, name: str) -> Fingerprint:
    table = quote_identifier(name)
    columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                           "AND tbl_name = ? ORDER BY name", (name,)).fetchall()
    definition = repr((columns, indexes)).encode()
    order = ", ".join(str(i + 1) for i in range(len(columns)))
    rows = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
    return fingerprint_of(definition, (repr(row).encode() for row in rows))
