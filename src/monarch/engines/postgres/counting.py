"""Write accounting on PostgreSQL: the engine's connection counts each statement's rows.

The engine's connection (``self.conn`` of migrations, and what runs ``.sql`` migrations) makes
its cursors of a subclass of ``psycopg.Cursor`` whose ``execute`` and ``executemany`` report the
statement and its ``rowcount`` to the engine's ledger, which counts them only while a
migration's window is open (see :mod:`monarch.accounting`). Results are unchanged. Not counted:
``COPY`` (``cursor.copy()``), server-side (named) cursors, statements inside ``DO`` blocks and
functions (the server reports only the outer statement), and other connections the migration
opens itself.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from monarch.accounting import Ledger

if TYPE_CHECKING:
    import psycopg


def count_writes(conn: psycopg.Connection[Any], ledger: Ledger) -> None:
    """Make ``conn``'s cursors report to ``ledger``."""
    conn.cursor_factory = _cursor_type()
    conn.monarch_ledger = ledger  # type: ignore[attr-defined]


@cache
def _cursor_type() -> type[Any]:
    # psycopg stays unloaded until a PostgreSQL environment connects.
    import psycopg

    def execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        result = psycopg.Cursor.execute(self, query, params, **kwargs)
        _report(self, query)
        return result

    def executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> None:
        psycopg.Cursor.executemany(self, query, params_seq, **kwargs)
        _report(self, query)

    return type("CountingCursor", (psycopg.Cursor,), {
        "execute": execute,
        "executemany": executemany,
        "__doc__": "A cursor that reports what it executes to its connection's ledger.",
    })


def _report(cursor: Any, query: Any) -> None:
    ledger: Ledger | None = getattr(cursor.connection, "monarch_ledger", None)
    if ledger is None or not ledger.active:
        return
    if isinstance(query, bytes):
        text = query.decode(errors="replace")
    elif isinstance(query, str):
        text = query
    else:
        try:
            text = query.as_string(cursor.connection)
        except Exception:  # a template or composition monarch cannot print: not counted
            return
    ledger.statement(text, cursor.rowcount)
