"""Restoring a dump into MongoDB: staging collections, raw inserts, verification, then the swap.

Documents travel as raw BSON from the dump to the server: the dump reader's runs of documents
become the insert commands' bytes (:func:`~monarch.engines.mongo.raw_batches.insert_raw`), never
decoded. Nothing the user sees changes until every collection has been loaded, counted
against the dump and indexed; only then does :mod:`monarch.engines.mongo.journal` swap the
staging collections in.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monarch.archive.events import CollectionEnd
from monarch.archive.meta import COLLECTION, TIMESERIES, VIEW, invalid_collection_name
from monarch.archive.reader import ArchiveReader
from monarch.engines.base import CollectionRestored, RestoreStats
from monarch.engines.mongo._inserter import Inserter
from monarch.engines.mongo._moves import INDEX_FIELDS_DROPPED
from monarch.engines.mongo._swap import SETTLE_SECONDS
from monarch.engines.mongo.errors import first_line, translated
from monarch.engines.mongo.journal import (
    PROBE_PREFIX,
    Journal,
    SwapPlan,
    is_operational,
    name_fits,
)
from monarch.engines.selection import WHOLE, Selection
from monarch.errors import (
    ArchiveError,
    BackupError,
    ConnectionFailed,
    IndexRefused,
    MonarchError,
    UsageError,
)
from monarch.io import Buffer, Readable
from monarch.progress import Item, NullProgress

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymongo.errors import OperationFailure

    from monarch.archive.events import DumpReader
    from monarch.archive.meta import CollectionMeta
    from monarch.engines.mongo import MongoEngine
    from monarch.progress import Progress

FERRETDB_WORKERS = 1
"""Insertion threads on FerretDB. One thread already overlaps reading with the server's work;
measured (docs/restore.md), 2 and 4 threads were no faster, often slower: SQLite serialises
writers."""
DEFAULT_WORKERS = 4
"""Insertion threads on other servers: mongorestore's parallelism (4 collections at once),
for servers whose writes scale with connections."""
BATCH_DOCUMENTS = 40_000
BATCH_BYTES = 2 * 1024 * 1024
"""With the size of a dump reader's runs of documents (256 KiB: a batch is cut once it holds
BATCH_DOCUMENTS or BATCH_BYTES, so it passes them by at most one run), this bounds each insert,
and so memory: up to ``2 * workers`` batches wait and ``workers`` are in flight. A batch is sent
as it is (no object per document), so the count bound only keeps the smallest documents under
the servers' 100,000 writes per command (a run holds at most 52,429 empty documents). Measured
on the wire server (docs/backups.md): 2 MiB inserts beat 256 KiB and 8 MiB ones."""

_PROBE_BYTES = 6
_SAME_PROBE = f"^{PROBE_PREFIX}[0-9a-f]{{{2 * _PROBE_BYTES}}}$"
"""The name of :func:`same_database`'s probe (the swap's own probes are the journal's)."""


@dataclass
class _Target:
    meta: CollectionMeta
    staging: str
    final: str
    indexes: list[dict[str, Any]] = field(default_factory=list)
    expected: int | None = None
    size: int = 0


def restore_dump(
    engine: MongoEngine,
    inp: Readable | DumpReader,
    *,
    db: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    before_swap: Callable[[], None] | None = None,
    command: str = "monarch restore",
    selection: Selection = WHOLE,
) -> RestoreStats:
    """Replace ``engine``'s database with database ``db`` of the dump ``inp``, exactly.

    See :meth:`monarch.engines.base.Engine.restore`: ``inp`` is an archive stream or an
    opened dump reader, ``db`` the database to take from it (default: its only one).
    Raises :class:`ArchiveError` for a corrupt dump, :class:`IndexRefused` for an index the
    server will not build,
    :class:`~monarch.errors.RestoreBusy` if another restore is running, and
    :class:`BackupError` for anything else that stops it; in every case before the swap the
    target is as it was. ``before_swap`` runs once everything is verified, just before the
    swap; if it raises, the restore stops there, target unchanged.

    With a partial ``selection`` only the selected collections are loaded (under their target
    names) and the swap touches those names only: every other collection of the target stays
    as it is, and nothing is dropped. A renamed collection whose new name the target already
    has is refused (UsageError, nothing done) unless ``selection.replace_existing``.
    """
    started = time.monotonic()
    env = engine.environment
    reader = ArchiveReader(inp) if isinstance(inp, Readable) else inp
    db = db if db is not None else _only_database(reader)
    available = [m for m in reader.collections if m.db == db and not _skipped(m)]
    selection.require_matches([m.collection for m in available], "collection",
                              f"the dump of {db!r}")
    wanted = [m for m in available if selection.selects(m.collection)]
    skipped = [m.namespace for m in reader.collections if m.db == db and _skipped(m)]
    finals = {m.collection: selection.target_name(m.collection, db) for m in wanted}
    _check_supported(wanted, env.database, finals)
    scope = frozenset(finals.values()) if selection.partial else None
    if selection.partial:
        with translated(env, "listing collections"):
            present = engine.db.list_collection_names()
        selection.refuse_overwrite(finals, present, f"environment {env.name!r}")
    if workers is None:
        with translated(env, "connecting"):
            ferret = engine.server_info().details == "FerretDB"
        workers = FERRETDB_WORKERS if ferret else DEFAULT_WORKERS
    journal = Journal(engine)
    # Built (and so validated) before the journal is taken: nothing to undo if it fails.
    staging = _Staging(engine, journal, wanted, finals, progress=progress or NullProgress(),
                       workers=max(1, workers))
    journal.acquire(command)
    try:
        # Before anything is loaded: a name the swap could not move is refused now.
        journal.probe(((t.staging, t.final) for t in staging.targets.values()), scope)
        with translated(env, "loading the staging collections"):
            staging.create()
            inserted = staging.load(reader, db)
        staging.timings["load"] = time.monotonic() - started
        staging.verify(inserted)
        with translated(env, "building indexes on the staging collections"):
            staging.build_indexes()
        staging.timings["indexes"] = time.monotonic() - started - staging.timings["load"]
        if before_swap is not None:
            before_swap()
    except BaseException as exc:
        # Interrupted while waiting for a reply, a command of ours may still be running.
        settle = not isinstance(exc, MonarchError) or isinstance(exc, ConnectionFailed)
        with contextlib.suppress(MonarchError):  # unreachable server: the next run cleans up
            journal.abandon(settle=settle)
        raise
    with translated(env, "swapping the restored collections in"):
        placing = [(t.staging, t.final) for t in staging.targets.values()]
        dropped = journal.swap(SwapPlan(placing, staging.views, scope))
    restored = [
        CollectionRestored(
            t.final, inserted.get(name, 0), t.size,
            tuple(str(spec["name"]) for spec in t.indexes)
        )
        for name, t in staging.targets.items()
    ] + [CollectionRestored(str(v["create"]), 0, 0, (), VIEW) for v in staging.views]
    return RestoreStats(
        database=env.database,
        collections=tuple(restored),
        dropped=tuple(dropped),
        skipped=tuple(skipped),
        recovered=journal.recovered,
        seconds=time.monotonic() - started,
        workers=staging.workers,
        details=staging.timings,
    )


class _Staging:
    """The staging side of one restore: create, load, verify, index."""

    def __init__(
        self,
        engine: MongoEngine,
        journal: Journal,
        metas: list[CollectionMeta],
        finals: dict[str, str],
        *,
        progress: Progress,
        workers: int,
    ) -> None:
        self._engine = engine
        self._db = engine.db
        self._journal = journal
        self._progress = progress
        self.workers = workers
        self.targets = {
            m.data_collection: _Target(m, journal.staging_name(finals[m.collection]),
                                       finals[m.collection], _index_specs(m))
            for m in metas
            if m.type == COLLECTION
        }
        self.views = [{**_view_command(m), "create": finals[m.collection]}
                      for m in metas if m.type == VIEW]
        self.timings: dict[str, float] = {}

    def create(self) -> None:
        from pymongo.errors import OperationFailure

        for target in self.targets.values():
            options = {k: v for k, v in target.meta.options.items() if k != "autoIndexId"}
            try:
                self._db.command({"create": target.staging, **options})
            except OperationFailure as exc:
                raise BackupError(
                    f"the server refused to create collection {target.meta.collection!r} with "
                    f"options {sorted(options)}: {_reason(exc)}; the target is unchanged"
                ) from exc

    def load(self, reader: DumpReader, source_db: str) -> dict[str, int]:
        """Insert every selected document into staging; return the acknowledged counts."""
        self._progress.start("restore", [Item(name) for name in self.targets])
        inserter = Inserter(self._db, self._engine.environment, self.workers, self._progress)
        pending: dict[str, tuple[list[Buffer], int, int]] = {}
        ok = False
        try:
            for event in reader:
                target = self.targets.get(event.collection) if event.db == source_db else None
                if target is None:
                    continue
                name = event.collection
                batch, size, count = pending.pop(name, ([], 0, 0))
                if isinstance(event, CollectionEnd):
                    target.expected = event.documents
                    if batch:
                        inserter.submit(name, target.staging, batch, size)
                    inserter.end(name)
                    continue
                batch.append(event.data)
                size += len(event.data)
                count += event.count
                target.size += len(event.data)
                if count >= BATCH_DOCUMENTS or size >= BATCH_BYTES:
                    inserter.submit(name, target.staging, batch, size)
                    batch, size, count = [], 0, 0
                pending[name] = (batch, size, count)
            for name, (batch, size, _) in pending.items():
                if batch:  # only a dump without a CollectionEnd leaves any; verify() refuses it
                    inserter.submit(name, self.targets[name].staging, batch, size)
            counts = inserter.finish()
            ok = True
            return counts
        finally:
            if not ok:
                inserter.abort()  # no insert may recreate a staging collection after cleanup

    def verify(self, inserted: dict[str, int]) -> None:
        for name, target in self.targets.items():
            if target.expected is None:
                raise ArchiveError(f"the dump ended without the end of collection {name!r}")
            got = inserted.get(name, 0)
            if got != target.expected:
                raise BackupError(
                    f"collection {name!r}: the dump has {target.expected} documents but the "
                    f"server acknowledged {got}; the target is unchanged"
                )

    def build_indexes(self) -> None:
        from pymongo.errors import OperationFailure

        for target in self.targets.values():
            for spec in target.indexes:
                name, coll = str(spec["name"]), target.meta.collection
                try:
                    # One index per command: FerretDB mishandles several in one createIndexes.
                    self._db.command("createIndexes", target.staging, indexes=[spec])
                except OperationFailure as exc:
                    raise IndexRefused(
                        f"the server refused index {name!r} of collection {coll!r}: "
                        f"{_reason(exc)}; the restore was stopped and the target is unchanged",
                        collection=coll,
                        index=name,
                        hint="restore to a server that supports this index, or drop it from "
                        "the source",
                    ) from exc
        self._try_views()

    def _try_views(self) -> None:
        """Create each view once under a staging name, so a refusal comes before the swap."""
        from pymongo.errors import OperationFailure

        for view in self.views:
            trial = self._journal.staging_name(str(view["create"]))
            try:
                self._db.command({**view, "create": trial})
            except OperationFailure as exc:
                raise BackupError(
                    f"the server refused view {view['create']!r}: "
                    f"{_reason(exc)}; the target is unchanged"
                ) from exc
            self._db.drop_collection(trial)


def recover_restore(engine: MongoEngine) -> str | None:
    """Finish or clean up an interrupted restore into ``engine``'s database, if there is one."""
    journal = Journal(engine)
    journal.acquire("monarch recover")
    recovered = journal.recovered
    journal.abandon()
    # A copy_db killed inside same_database's probe (milliseconds) leaves its probe behind.
    with translated(engine.environment, "removing a left-over probe"):
        for name in engine.db.list_collection_names(filter={"name": {"$regex": _SAME_PROBE}}):
            engine.db.drop_collection(name)
    return recovered


def same_database(engine: MongoEngine, other: MongoEngine) -> bool:
    """Whether ``other`` reaches ``engine``'s very database, asked of the servers themselves.

    Host names cannot tell (``localhost``, ``127.0.0.1``, a DNS alias, a replica set member):
    a uniquely named empty collection is created here and looked for there.
    """
    probe = f"{PROBE_PREFIX}{secrets.token_hex(_PROBE_BYTES)}"
    with translated(engine.environment, "checking whether two environments are one database"):
        try:
            engine.db.create_collection(probe)
            with translated(
                other.environment, "checking whether two environments are one database"
            ):
                return probe in other.db.list_collection_names(filter={"name": probe})
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM), the create may still be on its way to the server:
            # drop the probe now, and again once it had time to land.
            with contextlib.suppress(Exception):
                engine.db.drop_collection(probe)
                time.sleep(SETTLE_SECONDS)
            raise
        finally:
            engine.db.drop_collection(probe)


def _only_database(reader: DumpReader) -> str:
    found = sorted({m.db for m in reader.collections if m.db})
    if len(found) != 1:
        raise UsageError(f"the dump holds {len(found)} databases ({', '.join(found)}); say "
                         "which one to restore", hint="pass --from-db NAME")
    return found[0]


def _skipped(meta: CollectionMeta) -> bool:
    # The oplog (db ""), system collections, and monarch's own bookkeeping are not data.
    return not meta.db or is_operational(meta.collection)


def _check_supported(metas: list[CollectionMeta], target_db: str,
                     finals: dict[str, str]) -> None:
    for meta in metas:
        if meta.type == TIMESERIES:
            raise BackupError(
                f"{meta.namespace!r} is a time-series collection, which monarch cannot restore "
                "yet; nothing was done",
                hint="restore it with mongorestore, or leave it out of the dump",
            )
        if meta.type not in (COLLECTION, VIEW):
            raise BackupError(
                f"{meta.namespace!r} has type {meta.type!r}, which monarch cannot "
                "restore; nothing was done"
            )
        name = finals.get(meta.collection, meta.collection)
        if is_operational(name):
            raise UsageError(f"{name!r} is a name monarch or the server keeps for itself; "
                             "nothing was done", hint="rename it to another name")
        reason = invalid_collection_name(name)
        if reason is not None:
            raise ArchiveError(f"{name!r} is not a valid collection name ({reason}); nothing "
                               "was done", hint="rename it in the dump, or leave it out")
        if not name_fits(target_db, name):
            raise BackupError(
                f"collection name {name!r} is too long for database {target_db!r}; nothing "
                "was done",
                hint="restore into a database with a shorter name",
            )


def _index_specs(meta: CollectionMeta) -> list[dict[str, Any]]:
    specs = []
    for spec in meta.indexes:
        if spec.get("name") == "_id_":
            continue  # every collection has it already
        if "key" not in spec or "name" not in spec:
            raise ArchiveError(f"an index of {meta.namespace!r} lacks its key or name")
        specs.append({k: v for k, v in spec.items() if k not in INDEX_FIELDS_DROPPED})
    return specs


def _view_command(meta: CollectionMeta) -> dict[str, Any]:
    options = dict(meta.options)
    if "viewOn" not in options:
        raise ArchiveError(f"the view {meta.namespace!r} has no viewOn in its metadata")
    return {"create": meta.collection, **options}


def _reason(exc: OperationFailure) -> str:
    details = exc.details or {}
    return first_line(str(details.get("errmsg") or exc))
