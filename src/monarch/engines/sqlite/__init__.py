"""The SQLite engine (the standard library's sqlite3).

The environment's ``database`` is the file's absolute path. One connection serves migrations
(``self.conn``) and the history, opened on first use with ``isolation_level=None`` (no implicit
transactions: see :mod:`.history`). A missing file is created by the first write, as a new
database; a missing folder is an error. The migration lock and restore staging use a folder
beside the database, ``<db>-monarch/`` (see :mod:`.lock` and :mod:`.backup`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monarch.engines.base import ServerInfo
from monarch.engines.sqlite.errors import check_file, translated
from monarch.engines.sqlite.sql import SQLiteSQL

if TYPE_CHECKING:
    from monarch.config import Environment
    from monarch.engines.base import Dropped, StreamDump
    from monarch.engines.sqlite.backup import DumpResult, RestoreResult
    from monarch.engines.sqlite.history import SQLiteHistory
    from monarch.engines.sqlite.lock import SQLiteLock
    from monarch.io import Readable, Writable

BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for another connection's write lock before failing."""


class SQLiteEngine:
    """One SQLite environment. Opens the file on first use; ``close()`` closes it."""

    name = "sqlite"
    backup_format = "sqlite3-database"

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.path = Path(environment.database)
        self._conn: sqlite3.Connection | None = None
        self._locks: list[SQLiteLock] = []

    @property
    def connection(self) -> sqlite3.Connection:
        """The sqlite3 connection (``isolation_level=None``), opened on first use."""
        if self._conn is None:
            check_file(self.environment)
            with translated(self.environment, "opening the database"):
                from monarch.engines.sqlite.history import MigrationConnection

                conn = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    timeout=BUSY_TIMEOUT,
                    factory=MigrationConnection,
                )
                try:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    def exists(self) -> bool:
        """Whether the database file exists (reading a missing one must not create it)."""
        return self.path.exists()

    def server_info(self) -> ServerInfo:
        if self._conn is None and not self.exists():
            # Opening would create the file: a dry run or a status check must leave no trace.
            check_file(self.environment)
            return ServerInfo(
                engine=self.name,
                version=sqlite3.sqlite_version,
                supports_transactions=True,
                details=f"file {self.path} (not created yet)",
            )
        with translated(self.environment, "reading the journal mode"):
            row = self.connection.execute("PRAGMA journal_mode").fetchone()
        return ServerInfo(
            engine=self.name,
            version=sqlite3.sqlite_version,
            supports_transactions=True,
            details=f"file {self.path}, journal_mode={row[0] if row else '?'}",
        )

    def migration_context(self) -> dict[str, Any]:
        """``conn``: the sqlite3 connection, in a transaction while a transactional
        migration runs."""
        return {"conn": self.connection}

    def sql(self) -> SQLiteSQL:
        """How ``.sql`` migrations run here: cut by SQLite's tokenizer, on the migration
        connection."""
        return SQLiteSQL(self.connection)

    def history(self) -> SQLiteHistory:
        from monarch.engines.sqlite.history import SQLiteHistory

        return SQLiteHistory(self)

    def migration_lock(self, name: str = "migrate") -> SQLiteLock:
        from monarch.engines.sqlite.lock import SQLiteLock

        check_file(self.environment)
        lock = SQLiteLock(self.path, name)
        self._locks.append(lock)
        return lock

    def dump(self, out: Writable) -> DumpResult:
        """Write a consistent copy of the database file to ``out``, uncompressed.

        ``out`` is neither flushed nor closed; on error it holds an incomplete copy that the
        caller must discard.
        """
        from monarch.engines.sqlite.backup import dump

        return dump(self, out)

    def dump_stream(self, out: Writable) -> StreamDump:
        """The backup layer's dump: the online-backup copy, with each table's row count."""
        from monarch.engines.sqlite.backup import dump_stream

        return dump_stream(self, out)

    def same_database(self, other: object) -> bool:
        """Whether ``other`` is a SQLite engine on the same file (after resolving links)."""
        if not isinstance(other, SQLiteEngine):
            return False
        mine, theirs = self.path.resolve(), other.path.resolve()
        if mine == theirs:
            return True
        try:
            return mine.samefile(theirs)
        except OSError:
            return False

    def restore(self, inp: Readable) -> RestoreResult:
        """Replace the database file with the SQLite database read from ``inp``, atomically.

        Refused (RestoreBusy) while other connections hold the database open in WAL mode;
        applications must reopen the database afterwards.
        """
        from monarch.engines.sqlite.backup import restore

        return restore(self, inp)

    def copy_to(self, target: object) -> RestoreResult:
        """Make ``target`` (another SQLite environment) an exact copy of this database, with
        the same safety as :meth:`restore`."""
        from monarch.engines.sqlite.backup import copy

        return copy(self, target)

    def recover_restore(self) -> str | None:
        """Remove what an interrupted restore left; say what (None: nothing)."""
        from monarch.engines.sqlite.backup import recover

        return recover(self)

    def drop(self) -> Dropped:
        """Remove the database file (and its -wal/-shm/-journal), as safely as a restore
        replaces it; a later use creates a new, empty database."""
        from monarch.engines.sqlite.backup import drop

        return drop(self)

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
