"""The interface every database engine implements.

An engine wraps one environment's database. It is created unconnected by
:func:`monarch.engines.engine_for` and connects lazily; ``close()`` releases everything.
Driver errors never escape an engine: each backend maps them to :mod:`monarch.errors` in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from monarch.archive.events import DumpReader
    from monarch.config import Environment
    from monarch.history import HistoryStore, MigrationLock
    from monarch.io import Readable, Writable
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan


@dataclass(frozen=True)
class ServerInfo:
    """What a server says about itself."""

    engine: str
    version: str
    supports_transactions: bool
    details: str = ""


@dataclass(frozen=True)
class CollectionDump:
    """One collection (or view) as a dump wrote it: counts, bytes and the CRC-64 of its
    documents, and its metadata (options, indexes) as mongodump's Extended JSON text."""

    name: str
    type: str
    documents: int
    size: int
    crc64: int
    metadata: str = ""


@dataclass(frozen=True)
class DumpStats:
    """What an engine's dump wrote, in archive order."""

    database: str
    server: ServerInfo
    collections: tuple[CollectionDump, ...]
    seconds: float = 0.0
    parallel: int = 1

    @property
    def documents(self) -> int:
        """Documents dumped, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def size(self) -> int:
        """Bytes of BSON dumped, all collections together."""
        return sum(c.size for c in self.collections)


@dataclass(frozen=True)
class CollectionRestored:
    """One collection (or view) as a restore put it in place."""

    name: str
    documents: int
    bytes: int
    indexes: tuple[str, ...] = ()
    type: str = "collection"


@dataclass(frozen=True)
class RestoreStats:
    """What an engine's restore did.

    ``dropped``: collections the target had and the dump did not, now gone. ``skipped``:
    namespaces of the dump that are not restored (the oplog, ``system.*``, monarch's own).
    ``recovered``: what an earlier, interrupted restore into the same database had left, and
    how it was finished or cleaned up first.
    """

    database: str
    collections: tuple[CollectionRestored, ...]
    dropped: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    recovered: str | None = None
    seconds: float = 0.0
    workers: int = 1
    details: dict[str, float] = field(default_factory=dict)

    @property
    def documents(self) -> int:
        """Documents restored, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def bytes(self) -> int:
        """Bytes of BSON restored, all collections together."""
        return sum(c.bytes for c in self.collections)


@dataclass(frozen=True)
class Dropped:
    """What an engine's ``drop()`` did to its database.

    ``existed``: whether there was a database to drop. ``removed``: the collections or tables
    it held. ``how``: one line saying what was done (engines differ: see docs/backups.md).
    ``recovered``: what an interrupted restore had left, cleaned up first.
    """

    database: str
    existed: bool
    removed: tuple[str, ...] = ()
    how: str = ""
    recovered: str | None = None


ARCHIVE_FORMAT = "mongodump-archive"
"""The backup format of engines whose dumps monarch reads itself (:meth:`Engine.dump_archive`).
Any other ``backup_format`` is an opaque stream: see :class:`StreamEngine`."""


class Engine(Protocol):
    """One environment's database, as monarch uses it.

    ``backup_format`` names what the engine's backups hold. ``"mongodump-archive"``: monarch
    reads and writes the archive itself (``dump_archive``/``restore_dump``); anything else: the
    engine also is a :class:`StreamEngine`, whose dumps monarch stores and restores unread.
    """

    name: str
    environment: Environment
    backup_format: str

    def server_info(self) -> ServerInfo:
        """Connect if needed and describe the server; raises ConnectionFailed within seconds."""
        ...

    def migration_context(self) -> dict[str, Any]:
        """Attributes given to migration instances (``db``, ``client`` for MongoDB...)."""
        ...

    def history(self) -> HistoryStore:
        """The migration history of this database (see :mod:`monarch.history`)."""
        ...

    def migration_lock(self, name: str = "migrate") -> MigrationLock:
        """The lease lock named ``name`` that serialises migration runs on this database."""
        ...

    def restore_dump(
        self,
        reader: DumpReader,
        *,
        db: str,
        progress: Progress | None = None,
        workers: int | None = None,
        before_swap: Callable[[], None] | None = None,
    ) -> RestoreStats:
        """Replace this database with database ``db`` of ``reader``'s dump, exactly.

        Data is loaded and verified in staging first; the target changes only in a final swap
        that a crash cannot leave half done (it is finished by the next restore or
        :meth:`recover_restore`). Errors before the swap leave the target as it was.
        ``before_swap`` runs when all is loaded and verified; if it raises, nothing is swapped.
        """
        ...

    def recover_restore(self) -> str | None:
        """Finish or clean up an interrupted restore; say what was done (None: nothing to do)."""
        ...

    def same_database(self, other: object) -> bool:
        """Whether ``other`` reaches the very same database (whatever the URLs say)."""
        ...

    def dump_archive(
        self,
        out: Writable,
        *,
        query_set: QueryPlan | None = None,
        progress: Progress | None = None,
        parallel: int = 4,
        action: str = "backup",
    ) -> DumpStats:
        """Write this database to ``out`` as one complete mongodump-format archive.

        Documents pass through as raw BSON (decoded only for a query set's transform); memory
        stays bounded whatever the database size. ``out`` is neither flushed nor closed. On
        error ``out`` holds an incomplete archive that the caller must discard.
        """
        ...

    def drop(self) -> Dropped:
        """Remove the database and everything in it; refused (RestoreBusy) during a restore.

        Leftovers of an interrupted restore are cleaned up first. A database that does not
        exist is no error (``existed`` is False).
        """
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


@dataclass(frozen=True)
class TableStats:
    """One table of a stream dump: its rows and bytes as the engine could tell them cheaply
    (PostgreSQL: the planner's estimates; SQLite: counted on the snapshot)."""

    name: str
    rows: int
    bytes: int = 0


@dataclass(frozen=True)
class StreamDump:
    """What :meth:`StreamEngine.dump_stream` wrote: ``bytes`` of ``format``, uncompressed."""

    format: str
    bytes: int
    server: ServerInfo
    tool_version: str
    tables: tuple[TableStats, ...]
    seconds: float


class StreamRestored(Protocol):
    """What a stream restore or copy did (the engines' own result types have these fields)."""

    @property
    def database(self) -> str: ...
    @property
    def tables(self) -> tuple[str, ...]: ...
    @property
    def dropped(self) -> tuple[str, ...]: ...
    @property
    def recovered(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...


class StreamEngine(Protocol):
    """An engine whose backups are its own tool's byte stream (pg_dump, a SQLite file).

    Every method that replaces the database does so atomically: a failure, a kill, or an error
    raised by ``inp.read`` (a checksum that does not match) leaves the database as it was.
    """

    name: str
    environment: Environment
    backup_format: str

    def server_info(self) -> ServerInfo: ...

    def dump_stream(self, out: Writable) -> StreamDump:
        """Write a consistent dump, uncompressed, to ``out`` (neither flushed nor closed; on
        error it holds an incomplete dump that the caller must discard)."""
        ...

    def restore(self, inp: Readable) -> StreamRestored:
        """Replace the database with the dump read from ``inp``, exactly and atomically."""
        ...

    def copy_to(self, target: object) -> StreamRestored:
        """Make ``target`` (same engine) an exact copy of this database, atomically."""
        ...

    def same_database(self, other: object) -> bool:
        """Whether ``other`` reaches the very same database (whatever the URLs say)."""
        ...

    def recover_restore(self) -> str | None: ...

    def drop(self) -> Dropped:
        """Remove the database and everything in it; refused (RestoreBusy) during a restore.

        Leftovers of an interrupted restore are cleaned up first. A database that does not
        exist is no error (``existed`` is False).
        """
        ...

    def close(self) -> None: ...
