"""The SQLite engine (the standard library's sqlite3).

The environment's ``database`` is the file's absolute path. One connection serves migrations
(``self.conn``) and the history, opened on first use with ``isolation_level=None`` (no implicit
transactions: see :mod:`.history`). A missing file is created by the first write, as a new
database; a missing folder is an error. The migration lock and restore staging use a folder
beside the database, ``<db>-monarch/`` (see :mod:`.lock` and :mod:`.restore`).

Backups are the database file itself, copied by SQLite's online backup API (:mod:`.dump`); a
restore stages the file and renames it over the database (:mod:`.restore`); the check of a
stored file is SQLite's integrity check on a temporary copy (:mod:`.check`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monarch.accounting import Ledger, monarch_own
from monarch.engines.base import Capabilities, ServerInfo
from monarch.engines.opaque import byte_stream, refuse_query_set
from monarch.engines.selection import WHOLE
from monarch.engines.sqlite.check import check as check_file_stream
from monarch.engines.sqlite.counting import CountingConnection
from monarch.engines.sqlite.dump import dump as dump_database
from monarch.engines.sqlite.dump import row_counts
from monarch.engines.sqlite.errors import check_file, translated
from monarch.engines.sqlite.files import BUSY_TIMEOUT, SIDECAR_SUFFIX
from monarch.engines.sqlite.fingerprint import fingerprint
from monarch.engines.sqlite.history import SQLiteHistory
from monarch.engines.sqlite.lock import SQLiteLock
from monarch.engines.sqlite.restore import drop as remove_database
from monarch.engines.sqlite.restore import recover
from monarch.engines.sqlite.restore import restore as restore_file
from monarch.engines.sqlite.sql import SQLiteSQL

if TYPE_CHECKING:
    from collections.abc import Callable

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

__all__ = ["BUSY_TIMEOUT", "SQLiteEngine"]


class SQLiteEngine:
    """One SQLite environment. Opens the file on first use; ``close()`` closes it."""

    name = "sqlite"
    backup_format = "sqlite3-database"
    capabilities = Capabilities()

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.path = Path(environment.database)
        self._conn: sqlite3.Connection | None = None
        self._locks: list[SQLiteLock] = []
        self.ledger = Ledger(ignore=monarch_own)

    @property
    def connection(self) -> sqlite3.Connection:
        """The sqlite3 connection (``isolation_level=None``), opened on first use.

        It may be opened in one thread and used or closed in another (a dump runs in a thread
        of its own when piped into a restore), never by two at once: the engine is used by one
        caller at a time.
        """
        if self._conn is None:
            check_file(self.environment)
            with translated(self.environment, "opening the database"):
                conn = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    timeout=BUSY_TIMEOUT,
                    factory=CountingConnection,
                    check_same_thread=False,
                )
                try:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                except BaseException:
                    conn.close()
                    raise
            if self.ledger.enabled:
                conn.ledger = self.ledger
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
        return SQLiteHistory(self)

    def migration_lock(self, name: str = "migrate") -> SQLiteLock:
        check_file(self.environment)
        lock = SQLiteLock(self.path, name)
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
        """Write a consistent copy of the database file to ``out``, uncompressed, with each
        table's rows counted on the copy.

        ``query_set`` must be None (UsageError otherwise); ``parallel`` is ignored (one file).
        ``out`` is neither flushed nor closed; on error it holds an incomplete copy that the
        caller must discard.
        """
        refuse_query_set(query_set, self.name, self.environment)
        # The file is copied whole: the restore's selection picks the tables from it.
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
    ) -> RestoreStats:
        """Replace the database file with the SQLite database read from ``inp``, atomically.

        The file is staged and checked first; ``before_swap`` runs then, and if it raises the
        database stays as it was. Refused (RestoreBusy) while other connections hold the
        database open in WAL mode; applications must reopen the database afterwards.
        ``from_db``, ``workers`` and ``audit`` are ignored (one file; the lock and audit trail
        stay beside it).
        """
        stream = byte_stream(inp, self.backup_format)
        return restore_file(self, stream, progress=progress, before_swap=before_swap,
                            selection=selection or WHOLE)

    @staticmethod
    def check(inp: Readable, *, progress: Progress | None = None) -> StreamCheck:
        """SQLite's integrity check on a temporary copy of the file read from ``inp``.

        ``progress`` is not told anything: the caller counts the bytes it hands over (it
        wraps ``inp``), under the item it started.
        """
        return check_file_stream(inp)

    def same_database(self, other: Engine) -> bool:
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

    def inventory(self) -> dict[str, int]:
        """Rows of each table, counted (an absent file holds nothing: it is not created)."""
        if not self.exists():
            return {}
        return row_counts(self.environment, self.path)

    def fingerprint(self) -> dict[str, Fingerprint]:
        """Each table's columns, indexes and rows sorted by every column (see
        :mod:`.fingerprint`); an absent file holds nothing (it is not created)."""
        if not self.exists():
            return {}
        return fingerprint(self.environment, self.path)

    def databases(self, prefix: str) -> list[str]:
        """The database files in this database's folder whose names begin with ``prefix``
        (SQLite's own -wal, -shm, -journal files and monarch's folders left out)."""
        side = ("-wal", "-shm", "-journal", SIDECAR_SUFFIX)
        try:
            return sorted(p.name for p in self.path.parent.iterdir()
                          if p.name.startswith(prefix) and not p.name.endswith(side)
                          and p.is_file())
        except FileNotFoundError:
            return []

    def create(self) -> bool:
        """Create the file, empty (an empty file is an empty SQLite database), exclusively."""
        check_file(self.environment)
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        return True

    def remove(self) -> bool:
        """Remove the file as :meth:`drop` does, then monarch's folder beside it (its locks,
        a scratch lock held by this process included)."""
        dropped = self.drop()
        shutil.rmtree(self.path.with_name(self.path.name + SIDECAR_SUFFIX), ignore_errors=True)
        return dropped.existed

    def scratch_lock(self) -> SQLiteLock:
        """The lock named ``scratch`` in the folder beside the file (a restore leaves it)."""
        check_file(self.environment)
        lock = SQLiteLock(self.path, "scratch")
        self._locks.append(lock)
        return lock

    def recover_restore(self) -> str | None:
        """Remove what an interrupted restore left; say what (None: nothing)."""
        return recover(self)

    def drop(self, audit: AuditEntry | None = None) -> Dropped:
        """Remove the database file (and its -wal/-shm/-journal), as safely as a restore
        replaces it; a later use creates a new, empty database. ``audit`` is ignored (the
        lock and audit trail stay beside the file)."""
        return remove_database(self)

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
