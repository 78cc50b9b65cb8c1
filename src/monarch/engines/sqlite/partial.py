"""A selective SQLite restore: some tables of a staged, checked backup copied in, in one
transaction.

The backup is staged and checked as for a whole restore (:mod:`.restore`). Then, on the staged
copy (monarch's own file), the tables outside the selection are dropped and the renamed ones
renamed (``ALTER TABLE ... RENAME TO``, which rewrites the table's own statement, its indexes
and triggers). The target is opened, the copy ATTACHed, and in **one** ``BEGIN IMMEDIATE``
transaction each selected table is dropped from the target (its indexes and triggers with it),
created again from the copy's statement, filled by ``INSERT ... SELECT``, given its indexes,
triggers and AUTOINCREMENT counter. SQLite's journal makes the transaction atomic: a failure or
a kill leaves every table of the target as it was, a commit replaces all the selected ones; the
others are never touched.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from monarch.engines.sqlite.errors import translated, where
from monarch.engines.sqlite.files import BUSY_TIMEOUT
from monarch.engines.sqltext import quote_identifier as _quote
from monarch.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from monarch.config import Environment
    from monarch.engines.selection import Selection

SOURCE = "monarch_src"
_TMP = "monarch_rename_"


def prepare(env: Environment, staging: Path, selection: Selection) -> dict[str, str]:
    """Shape the staged copy: only the selected tables, under their target names.

    Returns the backup's name -> target name of each selected table. Refuses (UsageError) a
    pattern that matches nothing and a virtual table (its shadow tables cannot be moved).
    """
    conn = sqlite3.connect(staging, isolation_level=None)
    try:
        with translated(env, "selecting tables in the staged backup"):
            rows = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").fetchall()
            tables = {str(name): str(sql or "") for name, sql in rows}
            selection.require_matches(tables, "table", "the backup")
            finals = {t: selection.target_name(t) for t in tables if selection.selects(t)}
            for table in finals:
                if tables[table].upper().startswith("CREATE VIRTUAL"):
                    raise UsageError(f"{table!r} is a virtual table, which a selective restore "
                                     "cannot move; nothing was done",
                                     hint="restore the whole database instead")
            conn.execute("BEGIN")
            for table in tables:
                if table not in finals:
                    conn.execute(f"DROP TABLE {_quote(table)}")
            renamed = [(t, f) for t, f in finals.items() if t != f]
            # Through temporary names: a rename may take a name another one gives up.
            for index, (table, _) in enumerate(renamed):
                conn.execute(f"ALTER TABLE {_quote(table)} RENAME TO {_quote(f'{_TMP}{index}')}")
            for index, (_, final) in enumerate(renamed):
                conn.execute(f"ALTER TABLE {_quote(f'{_TMP}{index}')} RENAME TO {_quote(final)}")
            conn.execute("COMMIT")
    finally:
        conn.close()
    return finals


def present_tables(env: Environment, target: Path) -> list[str]:
    """The target's tables now (none when the file does not exist)."""
    if not target.exists():
        return []
    conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT)
    try:
        with translated(env, "listing tables"):
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()
    return [str(r[0]) for r in rows]


def merge(env: Environment, staging: Path, target: Path, tables: list[str]) -> None:
    """Replace ``tables`` of ``target`` by the staged copy's, in one transaction."""
    conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT)
    try:
        with translated(env, f"replacing the selected tables of {where(env)}"):
            conn.execute(f"ATTACH DATABASE ? AS {SOURCE}", (str(staging),))
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table in tables:
                    _replace_table(conn, table)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute(f"DETACH DATABASE {SOURCE}")
    finally:
        conn.close()


def _replace_table(conn: sqlite3.Connection, table: str) -> None:
    name = _quote(table)
    create = conn.execute(f"SELECT sql FROM {SOURCE}.sqlite_master WHERE type = 'table' "
                          "AND name = ?", (table,)).fetchone()
    conn.execute(f"DROP TABLE IF EXISTS main.{name}")
    conn.execute(str(create[0]))  # unqualified: created in main
    # Generated columns (hidden 2 and 3) are computed, never inserted.
    columns = [str(row[1]) for row in conn.execute(f"PRAGMA {SOURCE}.table_xinfo({name})")
               if int(row[6]) in (0, 1)]
    listed = ", ".join(_quote(c) for c in columns)
    conn.execute(f"INSERT INTO main.{name} ({listed}) SELECT {listed} FROM {SOURCE}.{name}")
    for (sql,) in conn.execute(
            f"SELECT sql FROM {SOURCE}.sqlite_master WHERE tbl_name = ? "
            "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type", (table,)
    ).fetchall():
        conn.execute(str(sql))
    if _has_sequence(conn, SOURCE) and _has_sequence(conn, "main"):
        conn.execute("DELETE FROM main.sqlite_sequence WHERE name = ?", (table,))
        conn.execute(f"INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM "
                     f"{SOURCE}.sqlite_sequence WHERE name = ?", (table,))


def _has_sequence(conn: sqlite3.Connection, schema: str) -> bool:
    row = conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE name = 'sqlite_sequence'"
                       ).fetchone()
    return row is not None
