"""Migration history in PostgreSQL: the ``monarch_migrations`` table, and the server's clock.

One row per migration, keyed by its name, one column per field of
:class:`~monarch.history.Record` (the checkpoint as JSONB). The table is created on the
first write, and columns a newer monarch added are added then too; reading never creates it.
Audit events are rows of ``monarch_events`` (created on the first event), keyed by their id.

History writes go through the engine's connection, the same one migrations get as ``self.conn``:
inside :meth:`PostgresHistory.transaction` a migration's statements and its record commit
together. Outside one the connection autocommits, so each write is durable at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from monarch.engines.postgres.conninfo import connect
from monarch.engines.postgres.errors import translated
from monarch.errors import MigrationError
from monarch.history import EVENTS_NAME, FAILED, HISTORY_NAME, INTERRUPTED, Event, Record

if TYPE_CHECKING:
    import psycopg

    from monarch.config import Environment
    from monarch.engines.postgres import PostgresEngine
    from monarch.history import AuditEntry

HISTORY_TABLE = HISTORY_NAME
EVENTS_TABLE = EVENTS_NAME
EVENT_COLUMNS = {
    "id": "text PRIMARY KEY",
    "kind": "text NOT NULL DEFAULT ''",
    "at": "timestamptz NOT NULL",
    "user": "text NOT NULL DEFAULT ''",
    "host": "text NOT NULL DEFAULT ''",
    "pid": "bigint NOT NULL DEFAULT 0",
    "command": "text NOT NULL DEFAULT ''",
    "version": "text NOT NULL DEFAULT ''",
    "summary": "text NOT NULL DEFAULT ''",
    "changes": "jsonb",
    "source": "text",
}

# Record field annotation -> column type; unknown annotations are stored as JSONB.
_TYPES = {
    "str": "text NOT NULL DEFAULT ''",
    "str | None": "text",
    "int": "bigint NOT NULL DEFAULT 0",
    "float | None": "double precision",
    "bool": "boolean NOT NULL DEFAULT false",
    "datetime | None": "timestamptz",
}
_JSON = "jsonb"


def column_types() -> dict[str, str]:
    """Column name -> SQL type, one per Record field (``name`` is the primary key)."""
    columns = {}
    for item in fields(Record):
        kind = _TYPES.get(str(item.type), _JSON)
        columns[item.name] = "text PRIMARY KEY" if item.name == "name" else kind
    return columns


class ServerClock:
    """The server's time, estimated once from ``clock_timestamp()`` and the round trip.

    Leases and history times use the server's clock, so machines with skewed clocks agree.
    """

    def __init__(self, engine: PostgresEngine) -> None:
        self._engine = engine
        self._offset: timedelta | None = None

    def now(self) -> datetime:
        if self._offset is None:
            self._offset = self._measure()
        return datetime.now(UTC) + self._offset

    def _measure(self) -> timedelta:
        with translated(self._engine.environment, "reading the server's clock"):
            conn = self._engine.connection
            before = time.time()
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            after = time.time()
        server = cast("datetime", row[0]) if row else datetime.now(UTC)
        return timedelta(seconds=server.timestamp() - (before + after) / 2)


class PostgresHistory:
    """:class:`~monarch.history.HistoryStore` over the ``monarch_migrations`` table."""

    def __init__(self, engine: PostgresEngine, clock: ServerClock) -> None:
        self._engine = engine
        self._clock = clock
        self._ready = False

    def now(self) -> datetime:
        return self._clock.now()

    def records(self) -> dict[str, Record]:
        from psycopg.rows import dict_row

        with translated(self._engine.environment, "reading the migration history"):
            conn = self._engine.connection
            if not _exists(conn, HISTORY_TABLE):
                return {}
            with conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(f'SELECT * FROM "{HISTORY_TABLE}"').fetchall()
        records = {}
        for row in rows:
            record = Record.from_dict({key: _from_sql(value) for key, value in row.items()})
            records[record.name] = record
        return records

    def save(self, record: Record, *, session: object | None = None) -> None:
        from psycopg import sql

        data = record.to_dict()
        names = list(column_types())
        values = [_to_sql(data.get(name), name) for name in names]
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in names)
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
            for name in names
            if name != "name"
        )
        statement = sql.SQL(
            "INSERT INTO {table} ({columns}) VALUES ({values}) "
            "ON CONFLICT (name) DO UPDATE SET {updates}"
        ).format(
            table=sql.Identifier(HISTORY_TABLE),
            columns=columns,
            values=sql.SQL(", ").join(sql.Placeholder() * len(names)),
            updates=updates,
        )
        with translated(self._engine.environment, f"recording migration {record.name}"):
            conn = self._connection(session, record)
            self._ensure(conn)
            conn.execute(statement, values)

    def save_checkpoint(
        self, name: str, checkpoint: dict[str, dict[str, Any]], *, session: object | None = None
    ) -> None:
        items = [{"key": key, **value} for key, value in checkpoint.items()]
        payload = _to_sql(items, "checkpoint")
        with translated(self._engine.environment, f"saving the checkpoint of {name}"):
            conn = self._connection(session)
            self._ensure(conn)
            conn.execute(
                f'UPDATE "{HISTORY_TABLE}" SET checkpoint = %s WHERE name = %s', (payload, name)
            )

    def supports_transactions(self) -> bool:
        return True

    def events(self, limit: int | None = None) -> list[Event]:
        from psycopg.rows import dict_row

        with translated(self._engine.environment, "reading the audit events"):
            conn = self._engine.connection
            if not _exists(conn, EVENTS_TABLE):
                return []
            with conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(
                    f'SELECT * FROM "{EVENTS_TABLE}" ORDER BY at DESC, id DESC LIMIT %s', (limit,)
                ).fetchall()
        return [Event.from_dict({k: _from_sql(v) for k, v in row.items()}) for row in rows]

    def add_event(self, event: Event) -> None:
        from psycopg.types.json import Jsonb

        data = event.to_dict()
        names = list(EVENT_COLUMNS)
        values = [Jsonb(data[n]) if n == "changes" else data[n] for n in names]
        quoted = ", ".join(f'"{name}"' for name in names)
        with translated(self._engine.environment, f"recording the {event.kind} event"):
            conn = self._connection(None)
            ensure_table(conn, EVENTS_TABLE, EVENT_COLUMNS)
            conn.execute(
                f'INSERT INTO "{EVENTS_TABLE}" ({quoted}) VALUES '
                f"({', '.join(['%s'] * len(names))}) ON CONFLICT (id) DO NOTHING",
                values,
            )

    @contextmanager
    def transaction(self) -> Iterator[object]:
        """A transaction on the engine's connection; yields that connection.

        A migration's ``self.conn`` is the same connection, so its statements join the
        transaction; a ``with self.conn.transaction():`` inside it becomes a savepoint.
        """
        from psycopg import pq

        env = self._engine.environment
        with translated(env, "starting a transaction"):
            conn = self._engine.connection
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                raise MigrationError(
                    f"environment {env.name!r}: the connection is already inside a transaction "
                    "(a migration began one and did not end it)"
                )
            block = conn.transaction()
            block.__enter__()
        try:
            yield conn
        except BaseException as exc:
            # The block's own error is what matters; a failed rollback only adds noise.
            with suppress(Exception):
                block.__exit__(type(exc), exc, exc.__traceback__)
            raise
        with translated(env, "committing a transaction"):
            block.__exit__(None, None, None)

    def _connection(
        self, session: object | None, record: Record | None = None
    ) -> psycopg.Connection[Any]:
        """The connection to write on: ``session`` (what transaction() yielded) or the engine's.

        A whole record saved outside the runner's transaction must be durable at once, so a
        transaction the migration itself left open is dealt with first: after a failure it is
        rolled back (its work was lost anyway); after a success it is an error in the migration.
        A session an interrupt left mid-command is replaced by a new one.
        """
        from psycopg import pq

        if session is not None:
            return cast("psycopg.Connection[Any]", session)
        conn = self._engine.connection
        status = conn.info.transaction_status
        if status in (pq.TransactionStatus.ACTIVE, pq.TransactionStatus.UNKNOWN):
            # An interrupt arrived mid-command and left the session unusable ("another command
            # is already in progress"). Ending it makes the server roll back what it had open
            # (work the record says was lost); the write goes through a new session.
            self._engine.disconnect()
            conn = self._engine.connection
            status = conn.info.transaction_status
        if record is None or status == pq.TransactionStatus.IDLE:
            return conn
        if record.state in (FAILED, INTERRUPTED) or status == pq.TransactionStatus.INERROR:
            conn.rollback()
            return conn
        raise MigrationError(
            f"migration {record.name} left a transaction open on `self.conn`: commit it in "
            "run(), or declare the migration transactional"
        )

    def _ensure(self, conn: psycopg.Connection[Any]) -> None:
        """Create the table, or add columns this version knows and the table lacks."""
        from psycopg import pq

        if self._ready:
            return
        ensure_table(conn, HISTORY_TABLE, column_types())
        # Inside a transaction the creation may yet be rolled back: check again next time.
        self._ready = conn.info.transaction_status == pq.TransactionStatus.IDLE


def carry_events(environment: Environment, source: str, target: str) -> None:
    """Give database ``target`` the audit events of database ``source``, and no others.

    A restore or drop_db swaps a new database in for the environment's (``target`` is that new
    database, not yet in place); the audit trail belongs to the environment, not to the data it
    replaces, so it moves across with the swap: both or neither. Events a dump brought into
    ``target`` (a dump made by pg_dump itself) are not this environment's and go.
    """
    from psycopg import sql

    table = sql.Identifier(EVENTS_TABLE)
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in EVENT_COLUMNS)
    with (
        connect(environment, dbname=source, doing="reading the audit events") as old,
        connect(environment, dbname=target, doing="carrying the audit events across") as new,
        translated(environment, "carrying the audit events across", dbname=target),
    ):
        new.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        if not _exists(old, EVENTS_TABLE):
            return
        ensure_table(new, EVENTS_TABLE, EVENT_COLUMNS)
        out = sql.SQL("COPY {} ({}) TO STDOUT").format(table, columns)
        into = sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)
        with old.cursor().copy(out) as reading, new.cursor().copy(into) as writing:
            for block in reading:
                writing.write(block)


def add_entry(engine: PostgresEngine, database: str, audit: AuditEntry, count: int) -> None:
    """Add the entry ``audit`` makes (``count``: the tables put in place or removed) to the
    audit trail of database ``database``, on ``engine``'s server.

    A restore, copy or drop_db calls it on the new database before swapping it in: the swap
    ends the session of the caller's environment lock, so an entry written afterwards could
    land behind a migration that took the lock at once; written here, it arrives with the
    swap, or not at all.
    """
    inside = type(engine)(engine.environment.with_database(database))
    try:
        history = inside.history()
        history.add_event(audit(history, count))
    finally:
        inside.close()


def ensure_table(conn: psycopg.Connection[Any], table: str, columns: dict[str, str]) -> None:
    """Create ``table`` with ``columns`` if missing, and add any missing column.

    Several processes may do this at once: PostgreSQL then reports a duplicate to the losers,
    which is fine. A savepoint (or a transaction, when autocommitting) contains that error.
    """
    import psycopg.errors as pe
    from psycopg import sql

    have = _columns(conn, table)
    if have and not (columns.keys() - have):
        return
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
        for name, kind in columns.items()
    )
    with suppress(pe.UniqueViolation, pe.DuplicateTable, pe.DuplicateColumn), conn.transaction():
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(table), definitions)
        )
        for name in columns.keys() - _columns(conn, table):
            kind = columns[name].replace(" PRIMARY KEY", "")
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    sql.Identifier(table), sql.Identifier(name), sql.SQL(kind)
                )
            )


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{table}"',)).fetchone()
    return bool(row and row[0])


def _columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped",
        (f'"{table}"',),
    ).fetchall()
    return {str(row[0]) for row in rows}


def _to_sql(value: Any, column: str) -> Any:
    if column == "checkpoint" or column_types().get(column) == _JSON:
        from psycopg.types.json import Jsonb

        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise MigrationError(
                f"the {column} of a PostgreSQL migration must hold JSON values only: {exc}"
            ) from None
        return Jsonb(value)
    return value


def _from_sql(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value
