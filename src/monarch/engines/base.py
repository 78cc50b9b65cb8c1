"""The interface every database engine implements: :class:`Engine`.

An engine wraps one environment's database. It is created unconnected by
:func:`monarch.engines.engine_for` and connects lazily; ``close()`` releases everything.
Driver errors never escape an engine: each backend maps them to :mod:`monarch.errors` in one place.

Every engine implements all of it: the migration history and lock, ``dump`` of its native backup
stream, ``restore`` of such a stream with its own atomic swap and recovery, ``check`` of a
stream's format, ``drop``. What differs between engines is said by :class:`Capabilities`, which
callers ask instead of branching on the engine's type.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from monarch.accounting import Ledger
    from monarch.archive.events import DumpReader
    from monarch.config import Environment
    from monarch.engines.selection import Selection
    from monarch.history import AuditEntry, HistoryStore, MigrationLock
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
    """One collection (or view, or table) as a dump wrote it: counts, bytes and the CRC-64 of
    its documents, and its metadata (options, indexes) as mongodump's Extended JSON text.

    A table of an opaque stream (PostgreSQL, SQLite) has ``type`` "table", its rows as
    ``documents`` and bytes as the engine could tell them cheaply (PostgreSQL: the planner's
    estimates; SQLite: counted on the snapshot), and ``crc64`` 0."""

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
    tool_version: str = ""
    """The dump tool's version, where another tool wrote the stream (pg_dump)."""

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
    """One collection (or view, or table: ``type`` "table", counts 0 where the engine restores
    an opaque stream) as a restore put it in place."""

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
"""The backup format monarch reads and writes itself (the MongoDB engine's); engines of any
other ``backup_format`` dump and restore their own tool's byte stream, which monarch stores and
checks without parsing it."""


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do beyond the protocol's common ground (ask these, never the type)."""

    query_sets: bool = False
    """``dump`` applies a query set (selects and transforms collections and documents)."""
    mongodump_input: bool = False
    """``restore`` also takes mongodump archives and directory dumps, and monarch 0.0.x's zips."""
    schemas: bool = False
    """Names are ``schema.table``; a selection may name schemas (PostgreSQL)."""
    drop_takes_bookkeeping: bool = False
    """``drop`` takes the environment's lock and audit trail with the database (MongoDB has no
    empty databases: they live in it), so nothing can be written there afterwards: writing
    would create the database again. (PostgreSQL carries them into the empty database it
    swaps in; SQLite keeps them beside the file it removes.)"""


@dataclass(frozen=True)
class Fingerprint:
    """What one collection (table) holds, in a form two states can be compared by.

    ``count``: its documents (rows). ``digest``: SHA-256 (hex) of its definition (indexes,
    columns, a view's pipeline) and then of every document (row) in an order that does not
    depend on how they were written: MongoDB's raw BSON by ``_id``, SQL rows sorted. Equal
    fingerprints mean equal content, to SHA-256's certainty; one changed field, index or
    column changes the digest.
    """

    count: int
    digest: str


def fingerprint_of(definition: bytes, items: Iterable[bytes]) -> Fingerprint:
    """The :class:`Fingerprint` of a collection (table) whose definition is ``definition`` and
    whose documents (rows), each encoded as bytes, ``items`` yields in their stable order.

    Consumes ``items`` as it goes (one at a time in memory). Each part is hashed with its
    length first, so that no two different sequences hash alike."""
    digest = hashlib.sha256()
    digest.update(len(definition).to_bytes(8, "big") + definition)
    count = 0
    for item in items:
        digest.update(len(item).to_bytes(8, "big"))
        digest.update(item)
        count += 1
    return Fingerprint(count, digest.hexdigest())


def differing(before: dict[str, Fingerprint], after: dict[str, Fingerprint]) -> list[str]:
    """The collections (tables) whose fingerprints differ between two states, sorted: those
    changed, and those present in only one of them."""
    return sorted(name for name in before.keys() | after.keys()
                  if before.get(name) != after.get(name))


@dataclass(frozen=True)
class StreamCheck:
    """What :meth:`Engine.check` found in a stream of its format.

    ``problems``: empty when sound. ``collections``: what the stream holds, where the engine
    reads it (a mongodump archive: each collection's counts and CRC from its end block); None
    for an opaque stream checked by its own tool. ``checked``: what was checked, for reports.
    """

    problems: tuple[str, ...]
    collections: tuple[CollectionDump, ...] | None
    checked: str


class Engine(Protocol):
    """One environment's database, as monarch uses it.

    ``backup_format`` names the byte stream ``dump`` writes and ``restore`` reads
    (``"mongodump-archive"``, ``"pg_dump-custom"``, ``"sqlite3-database"``).

    ``ledger`` hears every write the engine's own client or connection makes (the one
    migrations get): the migration runner opens an accounting window on it around each
    migration (see :mod:`monarch.accounting`).
    """

    name: str
    environment: Environment
    backup_format: str
    capabilities: Capabilities
    ledger: Ledger

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
        """Write this database to ``out`` as one complete stream of ``backup_format``,
        uncompressed (monarch compresses).

        Memory stays bounded whatever the database size. ``out`` is neither flushed nor
        closed; on error it holds an incomplete stream that the caller must discard.
        ``query_set``: only with ``capabilities.query_sets`` (else UsageError). ``progress``
        hears ``start(action, ...)``, advances and item ends, never ``finish``. ``selection``:
        dump only the collections (tables) it selects, under their own names (its renames are
        for the restore); None dumps everything.
        """
        ...

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
        """Replace this database with the dump read from ``inp``, exactly and atomically.

        Data is loaded and verified in staging first; the target changes only in a final swap
        that a crash cannot leave half done (it is finished by the next restore or
        :meth:`recover_restore`). Errors before the swap, including one raised by ``inp``
        itself (a checksum that does not match), leave the target as it was. ``before_swap``
        runs when all is loaded and verified; if it raises, nothing is swapped. ``from_db``:
        the database to take from a dump that holds several (mongodump's).

        ``selection`` (see :mod:`monarch.engines.selection`): a partial one restores only the
        collections (tables) it selects, under their target names, each replaced atomically;
        every other one of this database stays untouched and ``dropped`` is empty. A rename
        onto an existing name is refused (UsageError, nothing done) unless
        ``selection.replace_existing``. An engine that cannot select raises UsageError.

        ``audit`` makes the restore's entry for the audit trail. An engine whose swap puts a
        new database, history and all, in the place of the one whose lock the caller holds
        (PostgreSQL's whole restore) calls it and writes the entry into the new database
        before the swap, so that the data and its entry arrive together (or neither, on a
        failure): the swap ends the lock's session. The others ignore it: their
        history and lock stay where they are, and the caller writes the entry afterwards.
        """
        ...

    @staticmethod
    def check(inp: Readable, *, progress: Progress | None = None) -> StreamCheck:
        """Read a whole stream of ``backup_format`` and say what is wrong with it, touching no
        database (a damaged stream is an answer, not an error). A static method: verify calls
        it on the engine's class, with no environment at hand."""
        ...

    def inventory(self) -> dict[str, int]:
        """What this database holds now: each collection's (table's) documents (rows), by the
        name a selection matches (``schema.table`` for PostgreSQL). Changes nothing."""
        ...

    def fingerprint(self) -> dict[str, Fingerprint]:
        """What this database holds now, comparable across states: each collection's (table's)
        :class:`Fingerprint`, by the name :meth:`inventory` gives it, monarch's own bookkeeping
        (:data:`monarch.history.BOOKKEEPING`, in any schema) left out. Reads every document
        (row), streamed: memory stays bounded; a database that does not exist holds nothing.
        Changes nothing."""
        ...

    def databases(self, prefix: str) -> list[str]:
        """The names of the databases on this engine's server that begin with ``prefix``,
        sorted (SQLite: the files beside this database's file, by file name). Those the
        login may not see are not listed. Changes nothing."""
        ...

    def create(self) -> bool:
        """Create this environment's database, empty; False (and nothing done) when it exists
        already. Atomic where the server can say so: PostgreSQL's ``CREATE DATABASE``, an
        exclusive file creation for SQLite. MongoDB has no empty databases (one exists from
        its first write): there it is True when the database holds nothing yet but monarch's
        lock (a scratch database's lock is taken first)."""
        ...

    def remove(self) -> bool:
        """Remove this environment's database from its server entirely (unlike :meth:`drop`,
        which PostgreSQL answers with an empty database), with what an interrupted restore
        into it left; False when there was none. For scratch databases: see
        :mod:`monarch.backups.scratch`."""
        ...

    def scratch_lock(self) -> MigrationLock:
        """The lock that marks this database as a live run's scratch database (see
        :mod:`monarch.backups.scratch`). It outlives a restore into the database, and its
        holder's death frees it: at once on PostgreSQL (a session's advisory lock, taken on
        the maintenance database) and SQLite (a file lock); on MongoDB (a lease in the
        database's ``monarch_lock``) at once when the holder ran on this machine, as for the
        environment's lock, else when its lease runs out."""
        ...

    def recover_restore(self) -> str | None:
        """Finish or clean up an interrupted restore; say what was done (None: nothing to do)."""
        ...

    def same_database(self, other: Engine) -> bool:
        """Whether ``other`` reaches the very same database (whatever the URLs say)."""
        ...

    def drop(self, audit: AuditEntry | None = None) -> Dropped:
        """Remove the database and everything in it; refused (RestoreBusy) during a restore.

        Leftovers of an interrupted restore are cleaned up first. A database that does not
        exist is no error (``existed`` is False).

        ``audit`` makes the drop's entry for the audit trail, from the number of collections
        (tables) removed, as for :meth:`restore`: an engine that swaps a new, empty database
        in (PostgreSQL) writes it into that database before the swap, which ends the lock's
        session; the others ignore it, and the caller writes the entry afterwards (or, on
        MongoDB, none: the trail goes with the database).
        """
        ...

    def disconnect(self) -> None:
        """Let go of the connection that the history and migrations use (locks stay held); the
        next use opens a fresh one. A command that waited for the lock calls it: a restore that
        held the lock meanwhile may have replaced the database (and ended its sessions)."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...
