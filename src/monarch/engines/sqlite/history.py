"""Migration history in SQLite: the ``monarch_migrations`` table.

One row per migration, keyed by its name, one column per field of
:class:`~monarch.history.Record`: times as ISO 8601 text in UTC, the checkpoint as JSON
text, flags as 0/1. The table is created on the first write (with columns a newer monarch adds
added then); reading never creates it, nor the database file. Audit events live beside the
database, not in it (:mod:`.events`): a restore or drop must not take them away.

Writes go through the engine's connection, which migrations get as ``self.conn``. The sqlite3
module runs it with ``isolation_level=None``: no implicit transactions, each statement commits
unless an explicit ``BEGIN`` is open. :meth:`SQLiteHistory.transaction` opens one, so a
migration's statements and its record commit together; while it is open the connection (a
:class:`MigrationConnection`) refuses the calls that would commit it early.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from monarch.engines.sqlite.errors import translated, where
from monarch.engines.sqlite.events import append_event, read_events
from monarch.errors import MigrationError, MonarchError
from monarch.history import FAILED, HISTORY_NAME, INTERRUPTED, Event, Record

if TYPE_CHECKING:
    from monarch.engines.sqlite import SQLiteEngine

HISTORY_TABLE = HISTORY_NAME
# Record field annotation -> (column type, kind of conversion); unknown ones are JSON text.
_TYPES = {
    "str": ("TEXT NOT NULL DEFAULT ''", "plain"),
    "str | None": ("TEXT", "plain"),
    "int": ("INTEGER NOT NULL DEFAULT 0", "plain"),
    "float | None": ("REAL", "plain"),
    "bool": ("INTEGER NOT NULL DEFAULT 0", "bool"),
    "datetime | None": ("TEXT", "time"),
}
_JSON = ("TEXT", "json")


def columns() -> dict[str, tuple[str, str]]:
    """Column name -> (SQL type, conversion), one per Record field."""
    found = {}
    for item in fields(Record):
        kind, conversion = _TYPES.get(str(item.type), _JSON)
        found[item.name] = ("TEXT PRIMARY KEY" if item.name == "name" else kind, conversion)
    return found


class MigrationConnection(sqlite3.Connection):
    """The engine's connection (``self.conn`` of migrations), which refuses, inside monarch's
    transaction, the calls that would commit it behind monarch's back: ``commit()``, and
    ``executescript()`` (which commits first). Either would leave the migration's work
    committed without its record."""

    in_monarch_transaction = False

    def commit(self) -> None:
        self._refuse("commit()")
        super().commit()

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        self._refuse("executescript(), which commits the open transaction first,")
        return super().executescript(sql_script)

    def _refuse(self, what: str) -> None:
        if self.in_monarch_transaction:
            raise MigrationError(
                f"{what} cannot be used in a transactional migration: monarch commits the "
                "migration together with its history record",
                hint="run statements one by one with execute(), or set transactional = False",
            )


class SQLiteHistory:
    """:class:`~monarch.history.HistoryStore` over the ``monarch_migrations`` table."""

    def __init__(self, engine: SQLiteEngine) -> None:
        self._engine = engine
        self._ready = False

    def now(self) -> datetime:
        # The database is a local file: this machine's clock is the only one involved.
        return datetime.now(UTC)

    def records(self) -> dict[str, Record]:
        if not self._engine.exists():
            return {}
        with translated(self._engine.environment, "reading the migration history"):
            conn = self._engine.connection
            if not _has_table(conn, HISTORY_TABLE):
                return {}
            cursor = conn.execute(f'SELECT * FROM "{HISTORY_TABLE}"')
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        kinds = columns()
        records = {}
        for row in rows:
            data = {
                name: _from_sql(value, kinds.get(name, _JSON)[1])
                for name, value in zip(names, row, strict=True)
            }
            record = Record.from_dict(data)
            records[record.name] = record
        return records

    def save(self, record: Record, *, session: object | None = None) -> None:
        kinds = columns()
        data = record.to_dict()
        names = list(kinds)
        values = [_to_sql(data.get(name), kinds[name][1], name) for name in names]
        quoted = ", ".join(f'"{name}"' for name in names)
        updates = ", ".join(f'"{name}" = excluded."{name}"' for name in names if name != "name")
        with translated(self._engine.environment, f"recording migration {record.name}"):
            conn = self._connection(session, record)
            self._ensure(conn)
            conn.execute(
                f'INSERT INTO "{HISTORY_TABLE}" ({quoted}) VALUES ({", ".join("?" * len(names))}) '
                f"ON CONFLICT (name) DO UPDATE SET {updates}",
                values,
            )

    def save_checkpoint(
        self, name: str, checkpoint: dict[str, dict[str, Any]], *, session: object | None = None
    ) -> None:
        items = [{"key": key, **value} for key, value in checkpoint.items()]
        payload = _to_sql(items, "json", "checkpoint")
        with translated(self._engine.environment, f"saving the checkpoint of {name}"):
            conn = self._connection(session)
            self._ensure(conn)
            conn.execute(
                f'UPDATE "{HISTORY_TABLE}" SET checkpoint = ? WHERE name = ?', (payload, name)
            )

    def supports_transactions(self) -> bool:
        return True

    def events(self, limit: int | None = None) -> list[Event]:
        try:
            return read_events(self._engine.path, limit)
        except OSError as exc:
            raise self._trail_error("reading", exc) from exc

    def add_event(self, event: Event) -> None:
        try:
            append_event(self._engine.path, event)
        except (OSError, TimeoutError) as exc:
            raise self._trail_error(f"recording the {event.kind} event in", exc) from exc

    def _trail_error(self, doing: str, exc: BaseException) -> MonarchError:
        return MonarchError(
            f"{where(self._engine.environment)}: failed {doing} its audit trail beside it: {exc}",
            hint="check that the folder next to the database file is writable",
        )

    @contextmanager
    def transaction(self) -> Iterator[object]:
        """``BEGIN IMMEDIATE`` on the engine's connection; yields that connection.

        IMMEDIATE takes the write lock at once, so a busy database fails here, before the
        migration runs, rather than half-way. Inside, a migration must not COMMIT or BEGIN
        itself (SAVEPOINTs are fine).
        """
        env = self._engine.environment
        with translated(env, "starting a transaction"):
            conn = self._engine.connection
            if _in_transaction(conn):
                raise MigrationError(
                    f"environment {env.name!r}: the connection is already inside a transaction "
                    "(a migration began one and did not end it)"
                )
            conn.execute("BEGIN IMMEDIATE")
        guard = conn if isinstance(conn, MigrationConnection) else None
        if guard is not None:
            guard.in_monarch_transaction = True
        try:
            yield conn
        except BaseException:
            # The block's own error is what matters; a failed rollback only adds noise.
            with suppress(sqlite3.Error):
                if _in_transaction(conn):
                    conn.execute("ROLLBACK")
            raise
        finally:
            if guard is not None:
                guard.in_monarch_transaction = False
        with translated(env, "committing a transaction"):
            if not _in_transaction(conn):
                raise MigrationError(
                    f"environment {env.name!r}: the transaction was ended inside the migration "
                    "(it called commit() or COMMIT), so its record could not commit with it"
                )
            conn.execute("COMMIT")

    def _connection(
        self, session: object | None, record: Record | None = None
    ) -> sqlite3.Connection:
        """The connection to write on: ``session`` (what transaction() yielded) or the engine's.

        A whole record saved outside the runner's transaction must be durable at once, so a
        transaction the migration itself left open is dealt with first: after a failure it is
        rolled back (its work was lost anyway); after a success it is an error in the migration.
        """
        if session is not None:
            return cast(sqlite3.Connection, session)
        conn = self._engine.connection
        if record is None or not _in_transaction(conn):
            return conn
        if record.state in (FAILED, INTERRUPTED):
            conn.execute("ROLLBACK")
            return conn
        raise MigrationError(
            f"migration {record.name} left a transaction open on `self.conn`: commit it in "
            "run(), or declare the migration transactional"
        )

    def _ensure(self, conn: sqlite3.Connection) -> None:
        if self._ready:
            return
        ensure_table(conn, HISTORY_TABLE, {name: kind for name, (kind, _) in columns().items()})
        # Inside a transaction the creation may yet be rolled back: check again next time.
        self._ready = not conn.in_transaction


def ensure_table(conn: sqlite3.Connection, table: str, wanted: dict[str, str]) -> None:
    """Create ``table`` if missing and add any column of ``wanted`` it lacks."""
    have = _table_columns(conn, table)
    if have and not (wanted.keys() - have):
        return
    definitions = ", ".join(f'"{name}" {kind}' for name, kind in wanted.items())
    conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({definitions})')
    for name in wanted.keys() - _table_columns(conn, table):
        kind = wanted[name].replace(" PRIMARY KEY", "")
        with suppress(sqlite3.OperationalError):  # another process added it a moment ago
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {kind}')


def _in_transaction(conn: sqlite3.Connection) -> bool:
    # A function, not the attribute: statements in between change it behind a type checker.
    return conn.in_transaction


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


def _table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f'PRAGMA table_info("{table}")')}


def _to_sql(value: Any, conversion: str, column: str) -> Any:
    if value is None:
        return None
    if conversion == "time":
        return cast(datetime, value).astimezone(UTC).isoformat()
    if conversion == "bool":
        return int(bool(value))
    if conversion == "json":
        try:
            return json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise MigrationError(
                f"the {column} of a SQLite migration must hold JSON values only: {exc}"
            ) from None
    return value


def _from_sql(value: Any, conversion: str) -> Any:
    if value is None:
        return None
    if conversion == "time":
        parsed = datetime.fromisoformat(str(value))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if conversion == "bool":
        return bool(value)
    if conversion == "json":
        return json.loads(value)
    return value
