"""The PostgreSQL engine (psycopg 3, and the server's own pg_dump/pg_restore for backups).

Connections: one for migrations and the history (``self.conn`` in a migration), opened on first
use in autocommit mode; one more per held migration lock (see :mod:`.lock`); restores connect to
the server's maintenance database as well (see :mod:`.swap`).

Backups are pg_dump's custom format, uncompressed (:mod:`.dump`); a restore builds a scratch
database and swaps it in (:mod:`.restore`); the check of a stored dump is pg_restore reading it
(:mod:`.check`). Every module here imports psycopg lazily, in the functions that use it.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from monarch.accounting import Ledger, monarch_own
from monarch.engines.base import Capabilities, ServerInfo
from monarch.engines.opaque import byte_stream, refuse_query_set
from monarch.engines.postgres import scratch
from monarch.engines.postgres.check import check as check_dump
from monarch.engines.postgres.conninfo import connect
from monarch.engines.postgres.counting import count_writes
from monarch.engines.postgres.drop import drop as drop_to_empty
from monarch.engines.postgres.dump import dump as dump_database
from monarch.engines.postgres.errors import translated
from monarch.engines.postgres.fingerprint import TABLES, fingerprint
from monarch.engines.postgres.history import EVENTS_TABLE, PostgresHistory, ServerClock
from monarch.engines.postgres.lock import PostgresLock
from monarch.engines.postgres.partial import restore_selected
from monarch.engines.postgres.restore import recover
from monarch.engines.postgres.restore import restore as restore_dump
from monarch.engines.postgres.sql import PostgresSQL
from monarch.engines.postgres.swap import admin_connection
from monarch.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from monarch.archive.events import DumpReader
    from monarch.config import Environment
    from monarch.engines.base import (
        Dropped,
        DumpStats,
        Engine,
        Fingerprint,
        RestoreStats,
        StreamCheck,
    )
    from monarch.engines.selection import Selection
    from monarch.history import AuditEntry
    from monarch.io import Readable, Writable
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan


class PostgresEngine:
    """One PostgreSQL environment. Connects on first use; ``close()`` disconnects."""

    name = "postgres"
    backup_format = "pg_dump-custom"
    capabilities = Capabilities(schemas=True)

    def __init__(self, environment: Environment) -> None:
        # Every part of the engine imports psycopg lazily: without the extra, say so once, here,
        # before any of them is reached.
        if importlib.util.find_spec("psycopg") is None:
            raise ConfigError(
                f"environment {environment.name!r} is a PostgreSQL database, and "
                "psycopg is not installed",
                hint="pip install 'monarch[postgres]'",
            )
        self.environment = environment
        self._conn: psycopg.Connection[Any] | None = None
        self._clock: ServerClock | None = None
        self._locks: list[PostgresLock | scratch.ScratchLock] = []
        self.ledger = Ledger(ignore=monarch_own)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The autocommit psycopg connection to the environment's database, opened on first use."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.environment)
            if self.ledger.enabled:
                count_writes(self._conn, self.ledger)
        return self._conn

    def server_info(self) -> ServerInfo:
        with translated(self.environment, "connecting"):
            info = self.connection.info
            version = info.parameter_status("server_version") or str(info.server_version)
        return ServerInfo(
            engine=self.name,
            version=version,
            supports_transactions=True,
            details=f"server version number {info.server_version}",
        )

    def server_version(self) -> int:
        """The server's version number, e.g. 150004 for 15.4."""
        with translated(self.environment, "connecting"):
            return int(self.connection.info.server_version)

    def migration_context(self) -> dict[str, Any]:
        """``conn``: the autocommit connection, in a transaction while a transactional
        migration runs."""
        return {"conn": self.connection}

    def sql(self) -> PostgresSQL:
        """How ``.sql`` migrations run here: cut as psql cuts, on the migration connection."""
        return PostgresSQL(self.connection)

    def history(self) -> PostgresHistory:
        return PostgresHistory(self, self._server_clock())

    def migration_lock(self, name: str = "migrate") -> PostgresLock:
        lock = PostgresLock(self, name)
        self._locks.append(lock)
        return lock

    def dump(
        self,
        out: Writable,
        *,
        query_set: QueryPlan | None = None,
        progress: Progress | None = None,
        parallel: int = 4,
        action: str = "backup",
        selection: Selection | None = None,
    ) -> DumpStats:
        """Stream ``pg_dump --format=custom --compress=0`` of the database into ``out``.

        ``query_set`` must be None (UsageError otherwise); ``parallel`` is ignored (pg_dump
        writes one stream). The tables come with the planner's row and size estimates; ``out``
        is neither flushed nor closed, and on error holds an incomplete dump to discard.
        """
        refuse_query_set(query_set, self.name, self.environment)
        # Dumped whole: a selective restore picks its tables from a scratch copy of all of it.
        return dump_database(self, out, progress=progress, action=action)

    def restore(
        self,
        inp: Readable | DumpReader,
        *,
        from_db: str | None = None,
        progress: Progress | None = None,
        workers: int | None = None,
        before_swap: Callable[[], None] | None = None,
        selection: Selection | None = None,
        audit: AuditEntry | None = None,
        privileges: bool = True,
    ) -> RestoreStats:
        """Replace the database with the custom-format dump read from ``inp``, exactly.

        The dump is restored into a scratch database which then takes the target's place in
        one transaction; a failure or a kill before that (or ``before_swap`` raising) leaves the
        target as it was. Other sessions on the target are ended for the swap. ``from_db`` and
        ``workers`` are ignored (one database, one pg_restore). ``privileges=False`` skips the
        dump's GRANTs (for a server that lacks the roles they name). ``audit``: a whole
        restore writes its entry into the new database's audit trail before the swap (the
        swap ends the session of the caller's lock); a selective one, which swaps nothing,
        ignores it.
        """
        stream = byte_stream(inp, self.backup_format)
        if selection is not None and selection.partial:
            return restore_selected(self, stream, selection, progress=progress,
                                    before_swap=before_swap, privileges=privileges)
        return restore_dump(self, stream, progress=progress, before_swap=before_swap,
                            privileges=privileges, audit=audit)

    @staticmethod
    def check(inp: Readable, *, progress: Progress | None = None) -> StreamCheck:
        """pg_restore reads the dump from ``inp`` whole, restoring nothing (see :mod:`.check`).

        ``progress`` is not told anything: the caller counts the bytes it hands over (it
        wraps ``inp``), under the item it started.
        """
        return check_dump(inp)

    def same_database(self, other: Engine) -> bool:
        """Whether ``other`` reaches this very database: same server (its system identifier,
        else its address as it sees it) and same database name, whatever the URLs say."""
        if not isinstance(other, PostgresEngine):
            return False
        return self._identity() == other._identity()

    def inventory(self) -> dict[str, int]:
        """Rows of each table (``schema.table``), counted exactly; views are left out. A
        database that does not exist (yet: a restore creates it) holds nothing."""
        from psycopg import sql

        if not self._exists():
            return {}
        with translated(self.environment, "counting rows"):
            tables = self.connection.execute(TABLES).fetchall()
            found = {}
            for _oid, schema, table in tables:
                if table == EVENTS_TABLE:
                    continue  # the audit trail is the environment's, not data
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
                row = self.connection.execute(query).fetchone()
                found[f"{schema}.{table}"] = int(row[0]) if row else 0
        return found

    def fingerprint(self) -> dict[str, Fingerprint]:
        """Each table's columns, constraints, indexes and rows sorted by their text, seen in
        one snapshot (see :mod:`.fingerprint`); a database that does not exist holds nothing."""
        if not self._exists():
            return {}
        return fingerprint(self.connection, self.environment)

    def databases(self, prefix: str) -> list[str]:
        return scratch.databases(self.environment, prefix)

    def create(self) -> bool:
        return scratch.create(self.environment)

    def remove(self) -> bool:
        """``DROP DATABASE`` (ending its sessions), with an interrupted restore's leftovers."""
        self.disconnect()
        return scratch.remove(self.environment)

    def scratch_lock(self) -> scratch.ScratchLock:
        """A session's advisory lock on the maintenance database (see :mod:`.scratch`)."""
        lock = scratch.ScratchLock(self.environment)
        self._locks.append(lock)
        return lock

    def _exists(self) -> bool:
        """Whether the environment's database exists, asked of the maintenance database."""
        admin, admin_db = admin_connection(self.environment)
        try:
            with translated(self.environment, "looking for the database", dbname=admin_db):
                row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                    (self.environment.database,)).fetchone()
        finally:
            admin.close()
        return row is not None

    def recover_restore(self) -> str | None:
        """Remove what an interrupted restore into this database left; say what (None: nothing)."""
        return recover(self)

    def drop(self, audit: AuditEntry | None = None) -> Dropped:
        """Replace the database by a new, empty one with the same owner, encoding, locale,
        grants, settings and comment, swapped in as a restore does (see :mod:`.drop`).
        ``audit``: the drop's entry goes into the new database's audit trail before the swap
        (the swap ends the session of the caller's lock)."""
        return drop_to_empty(self, audit)

    def _identity(self) -> tuple[str, str]:
        """(server identity, database name): the cluster's ``system_identifier`` where the role
        may read it, else the server's own address and port as it sees them."""
        import psycopg

        conn = self.connection
        with translated(self.environment, "identifying the server"):
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

    def _server_clock(self) -> ServerClock:
        if self._clock is None:
            self._clock = ServerClock(self)
        return self._clock

    def disconnect(self) -> None:
        """Close the migrations' connection (locks stay held); the next use reopens it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        for lock in self._locks:
            lock.close()
        self._locks.clear()
        self.disconnect()
