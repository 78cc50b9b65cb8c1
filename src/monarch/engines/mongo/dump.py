"""Dumping a MongoDB database into a mongodump-format archive, as raw BSON, in parallel.

Shape of the pipeline::

    reader threads (one collection each, ``parallel`` at a time; find_raw_batches)
        -> one bounded queue (capped in bytes, so memory stays flat whatever the database size)
        -> the calling thread: ArchiveWriter (segments, CRC-64) -> ``out``

Documents are never decoded, except in collections whose query set entry has a ``transform``.
``out`` is anything with ``write()``: a compressor over a store upload for a backup, a pipe for
copy_db. The function neither closes nor flushes it.

This is the engine half of :meth:`monarch.engines.base.Engine.dump`; keep its signature
stable, copy_db calls it too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.errors import InvalidDocument

from monarch._version import __version__
from monarch.archive.meta import COLLECTION, VIEW, CollectionMeta
from monarch.archive.writer import ArchiveWriter, NamespaceStats
from monarch.engines.base import CollectionDump, DumpStats
from monarch.engines.mongo.errors import translated
from monarch.engines.mongo.journal import is_operational, unfinished_swap
from monarch.engines.mongo.raw_batches import Batch, find_counted
from monarch.engines.mongo.split import id_ranges, parts_for
from monarch.errors import BackupError
from monarch.io import Writable
from monarch.progress import Item

if TYPE_CHECKING:
    from pymongo.collection import Collection

    from monarch.engines.mongo import MongoEngine
    from monarch.engines.selection import Selection
    from monarch.progress import Progress
    from monarch.querysets.plan import CollectionQuery, QueryPlan

DEFAULT_PARALLEL = 4
"""Collections read at once: mongodump's default (``--numParallelCollections``)."""
QUEUE_BYTES = 8 * 1024 * 1024
"""Bytes of batches waiting for the writer; a bound on memory. Measured on the wire server
(docs/backups.md): 32 MiB bought no speed and cost its size."""
BATCH_BYTES = 1024 * 1024
"""Target size of one batch from the server. Each reader holds several copies of its batch
while pymongo cuts it out of the reply, so this bounds memory per reader; measured on the wire
server (docs/backups.md), 1 MiB batches were as fast as 4 MiB ones or faster, with 140 MB less
peak memory for four readers."""
DEFAULT_BATCH_DOCUMENTS = 1000


@dataclass
class _Source:
    meta: CollectionMeta
    query: CollectionQuery | None
    documents: int | None
    size: int | None
    avg_size: int | None
    part: dict[str, Any] | None = None
    """The ``_id`` range this reader covers when the collection is split, else None."""


def dump_archive(
    engine: MongoEngine,
    out: Writable,
    *,
    query_set: QueryPlan | None = None,
    progress: Progress | None = None,
    parallel: int = DEFAULT_PARALLEL,
    action: str = "backup",
    selection: Selection | None = None,
    split_bytes: int | None = None,
) -> DumpStats:
    """Write ``engine``'s database to ``out`` as a complete mongodump archive.

    Every collection (views and options and indexes included; ``system.*`` and monarch's own
    bookkeeping such as locks and staging collections left out, the migration history kept),
    or only those ``selection`` selects (under their own names), is
    read by up to ``parallel`` threads. ``query_set`` narrows and transforms what is read;
    ``progress`` hears about each batch under ``action``. Returns per-collection counts,
    bytes and CRC-64s, which are also in the archive. With ``split_bytes`` (e.g.
    :data:`~monarch.engines.mongo.split.SPLIT_BYTES`), a collection of at least twice that
    (without a query set entry) is read by several readers in ``_id`` ranges
    (:mod:`monarch.engines.mongo.split`). Off by default: on the machine it was measured on it
    bought no speed and cost about 130 MB of memory (docs/backups.md).

    Raises a :class:`~monarch.errors.MonarchError` on failure, after which ``out`` holds an
    incomplete archive that must be discarded.
    """
    started = time.monotonic()
    info = engine.server_info()
    _refuse_unfinished_restore(engine, action)
    sources = _plan(engine, query_set)
    if selection is not None and selection.partial:
        # Renames are the restore's business: the dump keeps the source's names.
        sources = [s for s in sources if selection.selects(s.meta.collection)]
    writer = ArchiveWriter(out)
    writer.write_header(
        [s.meta for s in sources],
        server_version=info.version,
        tool_version=_tool_version(),
        concurrent_collections=max(1, parallel),
    )
    stats = {(s.db, s.collection): s for s in writer.stats}
    if progress is not None:
        progress.start(action, [Item(s.meta.collection, s.documents, s.size) for s in sources])
    ended: dict[str, NamespaceStats] = {}
    for source in sources:
        if source.meta.type == VIEW:  # a view has metadata only
            ended[source.meta.collection] = writer.end_collection(
                source.meta.db, source.meta.data_collection)
    readable = [s for s in sources if s.meta.type != VIEW]
    # Biggest first, so the longest collection does not start last and run alone at the end.
    readable.sort(key=lambda s: -(s.size or 0))
    if split_bytes is not None:
        readable = _split(engine, readable, parallel, split_bytes)
    parts_left: dict[str, int] = {}
    for source in readable:
        parts_left[source.meta.collection] = parts_left.get(source.meta.collection, 0) + 1
    pipe = _Pipe(QUEUE_BYTES)
    readers = _Readers(engine, readable, pipe, max(1, parallel))
    try:
        readers.start()
        remaining = len(readable)
        while remaining:
            kind, source, payload = pipe.get()
            meta = source.meta
            if kind == "error":
                assert isinstance(payload, BaseException)
                raise payload
            if kind == "end":
                remaining -= 1
                parts_left[meta.collection] -= 1
                if parts_left[meta.collection]:
                    continue  # other ranges of this collection are still being read
                ended[meta.collection] = writer.end_collection(meta.db, meta.data_collection)
                if progress is not None:
                    progress.finish_item(meta.collection)
                continue
            assert isinstance(payload, tuple)
            batch, count = payload
            ns = stats[(meta.db, meta.data_collection)]
            before = ns.documents
            writer.write_documents(meta.db, meta.data_collection, batch, count)
            if progress is not None:
                progress.advance(meta.collection, ns.documents - before, len(batch))
        writer.close()
    finally:
        readers.stop()
    collections = tuple(_collection_dump(s.meta, ended[s.meta.collection]) for s in sources)
    return DumpStats(
        database=engine.environment.database,
        server=info,
        collections=collections,
        seconds=time.monotonic() - started,
        parallel=max(1, parallel),
    )


def _split(engine: MongoEngine, sources: list[_Source], parallel: int,
           split_bytes: int) -> list[_Source]:
    """``sources`` with each big collection replaced by one source per ``_id`` range."""
    out: list[_Source] = []
    for source in sources:
        parts = parts_for(source.size, parallel, split_bytes)
        if parts > 1 and source.query is None and source.documents:
            collection = engine.db[source.meta.data_collection]
            with translated(engine.environment, f"splitting {source.meta.collection!r}"):
                ranges = id_ranges(collection, source.documents, parts)
            if len(ranges) > 1:
                share = (source.size or 0) // len(ranges)
                out += [_Source(source.meta, None, None, share, source.avg_size, part)
                        for part in ranges]
                continue
        out.append(source)
    return out


def _tool_version() -> str:
    return f"monarch {__version__}"


def _refuse_unfinished_restore(engine: MongoEngine, action: str) -> None:
    """A database in the middle of a swap holds part of its data under monarch_aside_* names,
    which a dump leaves out: refuse rather than write a backup that silently lacks them."""
    env = engine.environment
    with translated(env, "reading the restore journal"):
        doc = unfinished_swap(engine.db)
    if doc is not None:
        raise BackupError(
            f"environment {env.name!r} is in the middle of a restore's swap (journal state "
            f"{doc.get('state')!r}, {doc.get('command', 'a restore')} with pid {doc.get('pid')} "
            f"on {doc.get('host')}): some collections may be set aside or not yet in place, "
            f"so a {action} now would miss data; nothing was read",
            hint=f"run `monarch recover {env.name}` (it finishes or undoes the swap, or says "
            f"that the restore is still running), then run the {action} again",
        )


def _plan(engine: MongoEngine, query_set: QueryPlan | None) -> list[_Source]:
    """List what to dump: collection metadata (options, indexes, uuid) and size estimates."""
    db = engine.db
    env = engine.environment
    with translated(env, "listing collections"):
        listed = sorted(db.list_collections(), key=lambda c: str(c["name"]))
    names = [str(c["name"]) for c in listed]
    if query_set is not None:
        query_set.check_against(names)
    sources: list[_Source] = []
    for info in listed:
        name = str(info["name"])
        kind = str(info.get("type") or COLLECTION)
        if is_operational(name) or (query_set is not None and not query_set.selects(name)):
            continue
        with translated(env, f"reading the indexes of {name!r}"):
            indexes = [dict(i) for i in db[name].list_indexes()] if kind != VIEW else []
        meta = CollectionMeta.build(
            env.database,
            name,
            options=info.get("options") or {},
            indexes=indexes,
            uuid=(info.get("info") or {}).get("uuid"),
            type=kind,
        )
        documents, size, avg = (None, None, None) if kind == VIEW else _estimate(engine, meta)
        query = query_set.query(name) if query_set is not None else None
        if query is not None and query.limit and documents is not None:
            documents = min(documents, query.limit)
        sources.append(_Source(meta, query, documents, size, avg))
    return sources


_Estimate = tuple[int | None, int | None, int | None]


def _estimate(engine: MongoEngine, meta: CollectionMeta) -> _Estimate:
    """(documents, bytes, average document size) from collStats; Nones if it is unavailable."""
    import pymongo.errors

    try:
        stats = engine.db.command("collStats", meta.data_collection)
    except pymongo.errors.OperationFailure:
        return None, None, None  # not allowed, or not supported: progress goes without totals
    except pymongo.errors.PyMongoError as exc:
        with translated(engine.environment, f"sizing {meta.collection!r}"):
            raise exc
    count, size, avg = stats.get("count"), stats.get("size"), stats.get("avgObjSize")
    return (
        int(count) if isinstance(count, int | float) else None,
        int(size) if isinstance(size, int | float) else None,
        int(avg) if isinstance(avg, int | float) and avg > 0 else None,
    )


def _collection_dump(meta: CollectionMeta, ns: NamespaceStats) -> CollectionDump:
    return CollectionDump(
        name=meta.collection,
        type=meta.type,
        documents=ns.documents,
        size=ns.size,
        crc64=ns.crc,
        metadata=meta.metadata,
    )


_Item = tuple[str, "_Source", "Batch | BaseException | None"]


class _Pipe:
    """A FIFO between reader threads and the writer, bounded by the bytes it holds.

    A batch larger than the whole budget still passes when the pipe is empty, so progress never
    stops; ``stop()`` releases every waiting reader (their ``put`` returns False).
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._held = 0
        self._items: deque[tuple[_Item, int]] = deque()
        self._cond = threading.Condition()
        self._stopped = False

    def put(self, item: _Item, size: int = 0) -> bool:
        with self._cond:
            while not self._stopped and self._held and self._held + size > self._budget:
                self._cond.wait()
            if self._stopped:
                return False
            self._items.append((item, size))
            self._held += size
            self._cond.notify_all()
            return True

    def get(self) -> _Item:
        with self._cond:
            while not self._items:
                self._cond.wait()
            item, size = self._items.popleft()
            self._held -= size
            self._cond.notify_all()
            return item

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._items.clear()
            self._held = 0
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped


class _Readers:
    """``count`` threads that take collections from a shared list and feed the pipe."""

    def __init__(
        self, engine: MongoEngine, sources: list[_Source], pipe: _Pipe, count: int
    ) -> None:
        self._engine = engine
        self._todo = deque(sources)
        self._lock = threading.Lock()
        self._pipe = pipe
        self._threads = [
            threading.Thread(target=self._run, name=f"monarch-dump-{i}", daemon=True)
            for i in range(min(count, len(sources)))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Release the readers and wait a little for them: a reader blocked on the network
        ends when the engine's client is closed, and is a daemon thread meanwhile."""
        self._pipe.stop()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def _next(self) -> _Source | None:
        with self._lock:
            return self._todo.popleft() if self._todo else None

    def _run(self) -> None:
        while (source := self._next()) is not None:
            try:
                if not self._read(source):
                    return
            except BaseException as exc:  # handed to the writer thread, which raises it
                self._pipe.put(("error", source, exc))
                return

    def _read(self, source: _Source) -> bool:
        meta, query = source.meta, source.query
        collection = self._engine.db[meta.data_collection]
        transform = _transformer(meta, query) if query is not None and query.transform else None
        with translated(self._engine.environment, f"reading collection {meta.collection!r}"):
            batches = _find(collection, query, source.avg_size, source.part)
            try:
                for raw, count in batches:
                    batch = (transform(raw), None) if transform is not None else (raw, count)
                    if batch[0] and not self._pipe.put(("data", source, batch), len(batch[0])):
                        return False
            finally:
                batches.close()
        return self._pipe.put(("end", source, None))


def _find(collection: Collection[Any], query: CollectionQuery | None, avg: int | None,
          part: dict[str, Any] | None = None) -> Generator[Batch]:
    batch = max(1, BATCH_BYTES // avg) if avg else DEFAULT_BATCH_DOCUMENTS
    kwargs: dict[str, Any] = {"batch_size": batch}
    if part:
        kwargs["filter"] = part
    if query is not None:
        kwargs["filter"] = dict(query.filter)
        if query.projection is not None:
            kwargs["projection"] = dict(query.projection)
        if query.sort:
            kwargs["sort"] = list(query.sort)
        if query.limit:
            kwargs["limit"] = query.limit
    return find_counted(collection, **kwargs)


def _transformer(meta: CollectionMeta, query: CollectionQuery) -> Callable[[bytes], bytes]:
    """Decode a batch, apply the query set's transform to each document, encode it again."""
    # Settings that give back, on encoding, exactly what was decoded: both UUID subtypes,
    # dates outside Python's range, time zones.
    options: CodecOptions[dict[str, Any]] = CodecOptions(
        document_class=dict,
        tz_aware=True,
        uuid_representation=UuidRepresentation.STANDARD,
        datetime_conversion=DatetimeConversion.DATETIME_AUTO,
    )
    transform = query.transform
    assert transform is not None

    def apply(raw: bytes) -> bytes:
        parts: list[bytes] = []
        for doc in bson.decode_all(raw, options):
            try:
                result = transform(doc)
            except Exception as exc:
                raise BackupError(
                    f"the query set's transform for {meta.collection!r} failed on the document "
                    f"with _id {doc.get('_id')!r}: {type(exc).__name__}: {exc}",
                    hint="fix the transform function in the query set file",
                ) from exc
            if result is None:
                continue
            if not isinstance(result, dict):
                raise BackupError(
                    f"the query set's transform for {meta.collection!r} returned "
                    f"{type(result).__name__}, not a dict or None"
                )
            try:
                parts.append(bson.encode(result, codec_options=options))
            except (TypeError, ValueError, InvalidDocument) as exc:
                raise BackupError(
                    f"the query set's transform for {meta.collection!r} returned a document "
                    f"that is not valid BSON: {exc}"
                ) from exc
        return b"".join(parts)

    return apply

