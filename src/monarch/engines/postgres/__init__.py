"""The PostgreSQL engine (psycopg 3, and the server's own pg_dump/pg_restore for backups).

Connections: one for migrations and the history (``self.conn`` in a migration), opened on first
use in autocommit mode; one more per held migration lock (see :mod:`.lock`); restores connect to
the server's maintenance database as well (see :mod:`.restore`).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from monarch.engines.base import ServerInfo
from monarch.engines.postgres.conninfo import connect
from monarch.engines.postgres.errors import translated
from monarch.engines.postgres.sql import PostgresSQL
from monarch.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

    from monarch.config import Environment
    from monarch.engines.base import Dropped, StreamDump
    from monarch.engines.postgres.history import PostgresHistory, ServerClock
    from monarch.engines.postgres.lock import PostgresLock
    from monarch.engines.postgres.restore import DumpResult, RestoreResult
    from monarch.io import Readable, Writable


class PostgresEngine:
    """One PostgreSQL environment. Connects on first use; ``close()`` disconnects."""

    name = "postgres"
    backup_format = "pg_dump-custom"

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
        self._locks: list[PostgresLock] = []

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The autocommit psycopg connection to the environment's database, opened on first use."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.environment)
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
        from monarch.engines.postgres.history import PostgresHistory

        return PostgresHistory(self, self._server_clock())

    def migration_lock(self, name: str = "migrate") -> PostgresLock:
        from monarch.engines.postgres.lock import PostgresLock

        lock = PostgresLock(self, name)
        self._locks.append(lock)
        return lock

    def dump(self, out: Writable, *, compress: int | None = None) -> DumpResult:
        """Stream ``pg_dump --format=custom`` of the database into ``out``.

        ``compress`` is pg_dump's compression level (None: its default; 0: none, for a caller
        that compresses the stream itself). ``out`` is neither flushed nor closed; on error it
        holds an incomplete dump that the caller must discard.
        """
        from monarch.engines.postgres.dump import dump

        return dump(self, out, compress=compress)

    def dump_stream(self, out: Writable) -> StreamDump:
        """The backup layer's dump: uncompressed (monarch compresses), with table statistics."""
        from monarch.engines.postgres.backup import dump_stream

        return dump_stream(self, out)

    def same_database(self, other: object) -> bool:
        """Whether ``other`` reaches this very database: same server (its system identifier,
        else its address as it sees it) and same database name, whatever the URLs say."""
        from monarch.engines.postgres.backup import same_database

        return same_database(self, other)

    def restore(self, inp: Readable, *, privileges: bool = True) -> RestoreResult:
        """Replace the database with the custom-format dump read from ``inp``, exactly.

        The dump is restored into a scratch database which then takes the target's place in
        one transaction; a failure or a kill before that leaves the target as it was. Other
        sessions on the target are ended for the swap. ``privileges=False`` skips the dump's
        GRANTs (for a server that lacks the roles they name).
        """
        from monarch.engines.postgres.restore import restore

        return restore(self, inp, privileges=privileges)

    def copy_to(self, target: object, *, privileges: bool = True) -> RestoreResult:
        """Make ``target`` (another PostgreSQL environment) an exact copy of this database,
        streaming ``pg_dump | pg_restore`` with the same safety as :meth:`restore`."""
        from monarch.engines.postgres.restore import copy

        return copy(self, target, privileges=privileges)

    def recover_restore(self) -> str | None:
        """Remove what an interrupted restore into this database left; say what (None: nothing)."""
        from monarch.engines.postgres.restore import recover

        return recover(self)

    def drop(self) -> Dropped:
        """Replace the database by a new, empty one with the same owner, encoding, locale,
        grants, settings and comment, swapped in as a restore does (see :mod:`.drop`)."""
        from monarch.engines.postgres.drop import drop

        return drop(self)

    def _server_clock(self) -> ServerClock:
        from monarch.engines.postgres.history import ServerClock

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
