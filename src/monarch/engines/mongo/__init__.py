"""The MongoDB engine (pymongo)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from monarch.accounting import Ledger, monarch_own
from monarch.engines.base import ARCHIVE_FORMAT, Capabilities, Dropped, ServerInfo
from monarch.engines.mongo._moves import names
from monarch.engines.mongo.accounting import write_listener
from monarch.engines.mongo.check import check_archive
from monarch.engines.mongo.dump import dump_archive
from monarch.engines.mongo.errors import translated
from monarch.engines.mongo.fingerprint import fingerprint
from monarch.engines.mongo.history import HISTORY_COLLECTION, MongoHistory, ServerClock
from monarch.engines.mongo.journal import is_operational
from monarch.engines.mongo.legacy_history import LEGACY_COLLECTION
from monarch.engines.mongo.lock import LOCK_COLLECTION, MongoLock, ScratchLock
from monarch.engines.mongo.odm import MongoengineDefault
from monarch.engines.mongo.restore import recover_restore, restore_dump, same_database
from monarch.engines.selection import WHOLE

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymongo import MongoClient
    from pymongo.database import Database

    from monarch.archive.events import DumpReader
    from monarch.config import Environment
    from monarch.engines.base import DumpStats, Engine, Fingerprint, RestoreStats, StreamCheck
    from monarch.engines.selection import Selection
    from monarch.history import AuditEntry
    from monarch.io import Readable, Writable
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan

# How long to wait for an unreachable server before failing: seconds, not minutes.
CONNECT_TIMEOUT_MS = int(os.environ.get("MONARCH_CONNECT_TIMEOUT_MS", "5000"))


def bookkeeping(collection: str) -> bool:
    """Whether ``collection`` is monarch's own (history, lock, restore journal and staging):
    writes to it are never a migration's."""
    return collection in _OWN or monarch_own(collection) or is_operational(collection)


_OWN = frozenset({HISTORY_COLLECTION, LOCK_COLLECTION, LEGACY_COLLECTION})


class MongoEngine:
    """One MongoDB environment. Connects on first use; ``close()`` disconnects."""

    name = "mongo"
    backup_format = ARCHIVE_FORMAT
    capabilities = Capabilities(query_sets=True, mongodump_input=True, drop_takes_bookkeeping=True)

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self._client: MongoClient[Any] | None = None
        self._clock: ServerClock | None = None
        self._mongoengine = MongoengineDefault(environment, CONNECT_TIMEOUT_MS)
        self.ledger = Ledger(ignore=bookkeeping)

    @property
    def client(self) -> MongoClient[Any]:
        """The pymongo client, created on first use."""
        if self._client is None:
            from pymongo import MongoClient

            with translated(self.environment, "connecting"):
                self._client = MongoClient(
                    self.environment.url.reveal(),
                    appname="monarch",
                    serverSelectionTimeoutMS=CONNECT_TIMEOUT_MS,
                    connectTimeoutMS=CONNECT_TIMEOUT_MS,
                    uuidRepresentation="standard",
                    tz_aware=True,
                    event_listeners=self._listeners(),
                )
        return self._client

    def _listeners(self) -> list[Any]:
        """The pymongo event listeners of the clients migrations use: write accounting's."""
        if not self.ledger.enabled:
            return []
        return [write_listener(self.ledger, self.environment.database)]

    @property
    def db(self) -> Database[Any]:
        """The environment's database."""
        return self.client[self.environment.database]

    def server_info(self) -> ServerInfo:
        with translated(self.environment, "connecting"):
            hello = self.client.admin.command("hello")
            build = self.client.admin.command("buildInfo")
        replicated = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        ferret = "ferretdb" in build or "ferretdbVersion" in build
        return ServerInfo(
            engine=self.name,
            version=str(build.get("version", "?")),
            supports_transactions=replicated and not ferret,
            details="FerretDB" if ferret else ("replica set" if replicated else "standalone"),
        )

    def migration_context(self) -> dict[str, Any]:
        """``db`` and ``client`` for the migration; with mongoengine installed, the environment
        also becomes mongoengine's default connection until :meth:`close` (see :mod:`.odm`).
        Both clients report their writes to :attr:`ledger`."""
        self._mongoengine.register(self._listeners())
        return {"db": self.db, "client": self.client}

    def history(self) -> MongoHistory:
        return MongoHistory(self, self._server_clock())

    def migration_lock(self, name: str = "migrate") -> MongoLock:
        return MongoLock(self, self._server_clock(), name)

    def _server_clock(self) -> ServerClock:
        if self._clock is None:
            self._clock = ServerClock(self)
        return self._clock

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
        """See :meth:`monarch.engines.base.Engine.restore`: ``inp`` is a mongodump archive
        stream or an opened dump reader; ``from_db`` defaults to the dump's only database.
        ``audit`` is ignored: the lock and audit trail stay out of the swap."""
        return restore_dump(self, inp, db=from_db, progress=progress, workers=workers,
                            before_swap=before_swap, selection=selection or WHOLE)

    def inventory(self) -> dict[str, int]:
        """Each collection's document count (views: 0), monarch's own left out."""
        with translated(self.environment, "counting documents"):
            found = names(self.db)
            return {name: (self.db[name].count_documents({}) if kind == "collection" else 0)
                    for name, kind in sorted(found.items()) if not is_operational(name)}

    def fingerprint(self) -> dict[str, Fingerprint]:
        """Each collection's documents as raw BSON by ``_id``, with its options and indexes
        (views: their definition), monarch's own left out (see :mod:`.fingerprint`)."""
        return fingerprint(self.db, self.environment)

    def databases(self, prefix: str) -> list[str]:
        with translated(self.environment, "listing databases"):
            return sorted(n for n in self.client.list_database_names() if n.startswith(prefix))

    def create(self) -> bool:
        """True when the database holds nothing but monarch's lock: MongoDB creates a database
        by its first write (a scratch database's: its lock)."""
        with translated(self.environment, "listing collections"):
            return set(self.db.list_collection_names()) <= {LOCK_COLLECTION}

    def remove(self) -> bool:
        """Drop the database (MongoDB's drop removes it entirely)."""
        return self.drop().existed

    def scratch_lock(self) -> ScratchLock:
        """A lease named ``scratch`` in the database's ``monarch_lock``, which restores keep
        (see :class:`.lock.ScratchLock`)."""
        return ScratchLock(self, self._server_clock())

    @staticmethod
    def check(inp: Readable, *, progress: Progress | None = None) -> StreamCheck:
        """Read a mongodump archive through: its structure, and each collection's CRC-64."""
        return check_archive(inp, progress)

    def recover_restore(self) -> str | None:
        return recover_restore(self)

    def same_database(self, other: Engine) -> bool:
        return isinstance(other, MongoEngine) and same_database(self, other)

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
        """See :meth:`monarch.engines.base.Engine.dump` (a mongodump archive, see :mod:`.dump`)."""
        return dump_archive(
            self, out, query_set=query_set, progress=progress, parallel=parallel, action=action,
            selection=selection,
        )

    def drop(self, audit: AuditEntry | None = None) -> Dropped:
        """Drop the database (``dropDatabase``), after finishing an interrupted restore.
        ``audit`` is ignored: the audit trail lives in the database and goes with it."""
        database = self.environment.database
        # Not listDatabases: a user with rights on this database only may not run it.
        with translated(self.environment, "listing collections"):
            existed = bool(self.db.list_collection_names())
        if not existed:  # MongoDB has no empty databases
            return Dropped(database, existed=False)
        recovered = recover_restore(self)  # refuses (RestoreBusy) while a restore is running
        with translated(self.environment, "dropping the database"):
            names = sorted(self.db.list_collection_names())
            self.client.drop_database(database)
        removed = tuple(n for n in names if not is_operational(n))
        return Dropped(database, True, removed, "dropped the database", recovered)

    def disconnect(self) -> None:
        """Nothing to do: a restore renames collections under a live client, which stays
        valid (and reconnects by itself when a server ends its connections)."""

    def close(self) -> None:
        self._mongoengine.release()
        if self._client is not None:
            self._client.close()
            self._client = None
