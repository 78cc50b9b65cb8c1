"""Write accounting on SQLite: the engine's connection counts each statement's changed rows.

:class:`CountingConnection` is the :class:`~.history.MigrationConnection` that the engine opens
and migrations get as ``self.conn`` (``.sql`` migrations run through it too); its ``execute``,
``executemany`` and the cursors it makes report each statement and its ``rowcount`` to the
engine's ledger, which counts them only while a migration's window is open (see
:mod:`monarch.accounting`). Nothing else changes: the same results, cursors of a subclass of
``sqlite3.Cursor``. ``executescript`` is not counted (sqlite3 gives no row count per statement).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from monarch.accounting import Ledger
from monarch.engines.sqlite.history import MigrationConnection


class CountingCursor(sqlite3.Cursor):
    """A cursor that reports what it executes to its connection's ledger."""

    def execute(self, sql: str, parameters: Any = (), /) -> CountingCursor:
        super().execute(sql, parameters)
        _report(self.connection, sql, self.rowcount)
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> CountingCursor:
        super().executemany(sql, seq_of_parameters)
        _report(self.connection, sql, self.rowcount)
        return self


class CountingConnection(MigrationConnection):
    """The engine's connection; ``ledger`` is set by the engine once connected."""

    ledger: Ledger | None = None

    def cursor(self, factory: Any = CountingCursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cursor = super().execute(sql, parameters)
        _report(self, sql, cursor.rowcount)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        cursor = super().executemany(sql, parameters)
        _report(self, sql, cursor.rowcount)
        return cursor


def _report(conn: sqlite3.Connection, sql: str, rowcount: int) -> None:
    ledger = getattr(conn, "ledger", None)
    if ledger is not None and ledger.active:
        ledger.statement(sql, rowcount)

