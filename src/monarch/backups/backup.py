"""Taking a backup: dump -> compress -> hash -> store upload, then the manifest, last.

The order is the guarantee. The archive is uploaded under its final key only once it is
complete (the store's commit is atomic); the manifest, written after it with ``exclusive=True``,
is what makes the backup exist. A process killed anywhere before that leaves at most an
unfinished upload or an orphan archive, neither of which is ever listed, and both of which the
next backup or prune removes.
"""

from __future__ import annotations

import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from monarch._version import __version__
from monarch.archive.compression import METHODS, Method, open_compressed_writer
from monarch.backups.catalog import LEFTOVER_AGE, remove_orphans
from monarch.backups.manifest import ARCHIVE_FORMAT, ArchiveEntry, CollectionEntry, Manifest
from monarch.backups.naming import (
    archive_key,
    check_environment_name,
    check_label,
    claim_key,
    make_name,
    manifest_key,
)
from monarch.backups.pipeline import CountingWriter, HashingWriter
from monarch.errors import StoreError, UsageError
from monarch.progress import NullProgress, Summary
from monarch.stores.base import AlreadyExists, ObjectNotFound

if TYPE_CHECKING:
    from collections.abc import Callable

    from monarch.config import Config
    from monarch.engines.base import CollectionDump, Engine, ServerInfo
    from monarch.io import Writable
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan
    from monarch.stores.base import Store

_T = TypeVar("_T")

_CLAIM_SETTLE = 0.2
"""Seconds between writing a name's claim and reading it back: long enough for a rival write
that was already on its way to land."""

DEFAULT_COMPRESSION: Method = "gzip"
"""Chosen from measurements (docs/backups.md): gzip level 1 through ISA-L compressed and
decompressed fastest here, and stock ``mongorestore --gzip`` reads it with no other tool; zstd
(about 15% smaller archives) is one option away."""


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: its name, manifest and where it is."""

    name: str
    manifest: Manifest
    store_url: str

    @property
    def archive_key(self) -> str:
        return self.manifest.archive.key

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.name)

    @property
    def size(self) -> int:
        """Bytes of the archive as stored (compressed)."""
        return self.manifest.archive.size

    @property
    def data_bytes(self) -> int:
        """Bytes of BSON documents dumped."""
        return self.manifest.data_bytes

    @property
    def documents(self) -> int:
        return self.manifest.documents

    @property
    def collections(self) -> int:
        return len(self.manifest.collections)

    @property
    def seconds(self) -> float:
        return self.manifest.duration

    @property
    def started_at(self) -> datetime:
        return self.manifest.started_at

    @property
    def finished_at(self) -> datetime:
        return self.manifest.finished_at


def backup(
    config: Config,
    env_name: str,
    *,
    label: str | None = None,
    query_set: str | QueryPlan | None = None,
    compression: str | None = None,
    progress: Progress | None = None,
    parallel: int | None = None,
) -> BackupResult:
    """Back up environment ``env_name``'s database into the backup store.

    Works for every engine: MongoDB databases are written as a mongodump archive, PostgreSQL
    and SQLite ones as their own tool's dump (see :mod:`monarch.backups.streams`).
    ``label`` ends the name (``production-20260101T120000Z-<label>``); ``query_set`` (a name
    in ``querysets/``, a class-based query set's class name, or a loaded
    :class:`~monarch.backups.querysets.QueryPlan`) narrows and transforms what is dumped;
    ``compression`` is ``"zstd"``, ``"gzip"`` or ``"none"`` (default: the store's
    ``compression`` option, else gzip). Returns once the manifest is written: the
    backup then exists and is listed. On any error nothing is listed and the upload is aborted.
    """
    from monarch.backups.querysets import query_set_for
    from monarch.engines import engine_for
    from monarch.stores import open_store

    environment = config.environment(env_name)
    check_environment_name(environment.name)
    if label is not None:
        check_label(label)
    method = _compression(compression if compression is not None else
                          config.backups.options.get("compression"))
    progress = progress or NullProgress()
    engine = engine_for(environment)
    claimed: list[str] = []
    try:
        # First, before the store is touched: a class-based query set runs on the database.
        qs = query_set_for(config, query_set, engine)
        store = open_store(config.backups)
        _clean_leftovers(store)
        dumper = _dumper(engine, qs, progress, parallel or 4)
        engine.server_info()  # fail on an unreachable server before naming anything
        started = datetime.now(UTC)
        name = claim_name(store, environment.name, label)
        claimed.append(name)
        key = archive_key(name, method)
        dumped, hashed, plain = _write_archive(store, key, method, dumper)
        try:
            finished = datetime.now(UTC)
            manifest = Manifest(
                name=name,
                monarch_version=__version__,
                environment=environment.name,
                engine=environment.engine,
                database=environment.database,
                source_host=environment.host,
                server_version=dumped.server.version,
                server_details=dumped.server.details,
                tool_version=dumped.tool_version,
                started_at=started,
                finished_at=finished,
                label=label,
                query_set=qs.name if qs is not None else None,
                archive=ArchiveEntry(
                    key=key,
                    compression=method,
                    size=hashed.size,
                    sha256=hashed.sha256,
                    uncompressed_size=plain.size,
                    format=dumped.format,
                ),
                collections=dumped.entries,
            )
            _write_manifest(store, manifest)
        except BaseException:
            # Interrupted or failed between the archive and its manifest: the archive would
            # be an orphan until the next backup or prune.
            _remove_unlisted(store, name, key)
            raise
    except BaseException:
        progress.finish(None)
        raise
    finally:
        for taken in claimed:
            release_name(store, taken)
        engine.close()
    progress.finish(Summary("backup", len(manifest.collections), manifest.documents,
                            manifest.data_bytes, manifest.duration,
                            unit="collection" if manifest.archive.format == ARCHIVE_FORMAT
                            else "table"))
    return BackupResult(name, manifest, store.display_url)


@dataclass(frozen=True)
class Dumped:
    """What a dump wrote, as the manifest records it."""

    server: ServerInfo
    format: str
    entries: tuple[CollectionEntry, ...]
    tool_version: str = ""


def _dumper(
    engine: Engine, query_set: QueryPlan | None, progress: Progress, parallel: int
) -> Callable[[Writable], Dumped]:
    """The dump to stream into the archive: monarch's own archive, or the engine's stream."""
    if engine.backup_format != ARCHIVE_FORMAT:
        from monarch.backups.streams import stream_dumper

        return stream_dumper(engine, query_set, progress)

    def dump(out: Writable) -> Dumped:
        stats = engine.dump_archive(out, query_set=query_set, progress=progress,
                                    parallel=parallel)
        return Dumped(stats.server, ARCHIVE_FORMAT, tuple(_entry(c) for c in stats.collections))

    return dump


def _compression(value: object) -> Method:
    if value is None:
        return DEFAULT_COMPRESSION
    if not isinstance(value, str) or value not in METHODS:
        raise UsageError(
            f"unknown compression {value!r}",
            hint="use one of: " + ", ".join(METHODS),
        )
    return value


def _clean_leftovers(store: Store) -> None:
    """Remove what killed backups left (unfinished uploads, orphan archives), if old enough."""
    store.cleanup(LEFTOVER_AGE)
    remove_orphans(store, LEFTOVER_AGE)


def claim_name(store: Store, environment: str, label: str | None) -> str:
    """A name no other backup has or is taking, reserved by writing its claim exclusively.

    The store's exclusive write is the arbiter: of several backups started in the same second
    one wins the name, the others wait for the next second and try again. The claim holds a
    random token that is read back after a moment, so a store whose exclusive write is not
    atomic (a look-then-write fallback, some S3 look-alikes) still gives the name to one
    writer only: the last to land. Remove the claim with :func:`release_name` once the
    manifest is written (or the backup failed).
    """
    deadline = time.monotonic() + 60
    token = uuid.uuid4().hex.encode()
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        name = make_name(environment, now, label)
        if next(iter(store.list(name + ".")), None) is None and _claim(store, name, token):
            return name
        time.sleep(1.0 - datetime.now(UTC).microsecond / 1e6 + 0.01)
    raise StoreError(
        f"could not find a free backup name for {environment!r} in 60 seconds",
        hint="are many backups of this environment starting at once?",
    )


def _claim(store: Store, name: str, token: bytes) -> bool:
    try:
        with store.writer(claim_key(name), exclusive=True) as upload:
            upload.write(token)
        time.sleep(_CLAIM_SETTLE)
        with store.reader(claim_key(name)) as stream:
            return bool(stream.read() == token)
    except (AlreadyExists, ObjectNotFound):
        return False  # another backup took this second first
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) while claiming: take back a claim that is ours.
        with suppress(StoreError, ObjectNotFound):
            with store.reader(claim_key(name)) as stream:
                ours = stream.read() == token
            if ours:
                store.delete(claim_key(name))
        raise


def release_name(store: Store, name: str) -> None:
    """Remove ``name``'s claim (a claim that cannot be removed is a leftover prune removes)."""
    with suppress(StoreError):
        store.delete(claim_key(name))


def _write_archive(
    store: Store, key: str, method: Method, dump: Callable[[Writable], _T]
) -> tuple[_T, HashingWriter, CountingWriter]:
    """Stream the dump into the store under ``key``; aborted unless complete."""
    upload = store.writer(key, exclusive=True)
    try:
        hashed = HashingWriter(upload)
        compressed = open_compressed_writer(hashed, method)
        plain = CountingWriter(compressed)
        stats = dump(plain)
        compressed.close()
        upload.commit()
    except BaseException as exc:
        upload.abort()
        if not isinstance(exc, Exception):
            # Interrupted, perhaps inside the commit after the object became visible: an
            # archive without a manifest is removed now rather than left for prune. (The key
            # is ours: its name was claimed.)
            with suppress(StoreError):
                store.delete(key)
        raise
    return stats, hashed, plain


def _write_manifest(store: Store, manifest: Manifest) -> None:
    """Write the manifest (never over another)."""
    with store.writer(manifest_key(manifest.name), exclusive=True) as upload:
        upload.write(manifest.to_json().encode("utf-8"))


def _remove_unlisted(store: Store, name: str, key: str) -> None:
    """Delete archive ``key`` of backup ``name`` unless its manifest exists after all (an
    interrupt can arrive after the store committed it, but before the call returned)."""
    # If this fails too, the archive is an orphan that the next backup or prune removes.
    with suppress(StoreError):
        wanted = manifest_key(name)
        if any(info.key == wanted for info in store.list(wanted)):
            return
        store.delete(key)


def _entry(dump: CollectionDump) -> CollectionEntry:
    from monarch.archive.meta import CollectionMeta

    meta = CollectionMeta("", dump.name, dump.metadata, dump.type)
    return CollectionEntry(
        name=dump.name,
        type=dump.type,
        documents=dump.documents,
        bytes=dump.size,
        crc64=dump.crc64,
        indexes=tuple(_plain_json(meta.parsed.get("indexes") or [])),
        options=_plain_json(meta.parsed.get("options") or {}),
    )


def _plain_json(value: object) -> Any:
    """BSON values as relaxed Extended JSON structures: readable, and json.dumps can write
    them. The archive keeps the exact metadata; the manifest's copy is for people and checks."""
    import json

    from bson import json_util

    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))

