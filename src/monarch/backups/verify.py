"""Verifying a backup: read the whole archive back from the store and check it against its
manifest, without a database.

Checked: the archive exists, its size and SHA-256 (over the stored, compressed bytes), its
compression, its structure (magic, header, blocks, terminators, end-of-collection blocks), each
collection's CRC-64 (against the archive's own end blocks, and the manifest's), document count,
bytes and index names, and that archive and manifest list the same collections.

PostgreSQL and SQLite backups are opaque to monarch: their size and SHA-256, their
decompression and uncompressed size, then their own tool's reading of them (``pg_restore`` into
nowhere; SQLite's integrity check on a temporary copy); see :mod:`monarch.backups.streams`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monarch.archive.events import CollectionEnd, Documents
from monarch.archive.reader import ArchiveReader
from monarch.backups.catalog import read_manifest
from monarch.backups.manifest import ARCHIVE_FORMAT
from monarch.backups.naming import check_name
from monarch.backups.pipeline import HashingReader, open_held
from monarch.errors import ArchiveError, StoreError
from monarch.progress import Item, NullProgress, Summary
from monarch.stores.base import ObjectNotFound

if TYPE_CHECKING:
    from monarch.archive.limits import LimitedReader
    from monarch.archive.meta import CollectionMeta
    from monarch.backups.manifest import Manifest
    from monarch.config import Config
    from monarch.progress import Progress
    from monarch.stores.base import Store


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`: ``ok`` when ``problems`` is empty."""

    name: str
    problems: tuple[str, ...]
    collections: int
    """Collections whose end-of-collection block was read and checked."""
    documents: int
    size: int
    """Bytes of the archive read from the store."""
    seconds: float
    checked: str = "structure, CRCs, counts, size and SHA-256"
    """What was checked against the manifest (for the report)."""
    unit: str = "collection"
    """What ``collections`` counts: ``"collection"`` (of documents) or ``"table"`` (of rows)."""
    legacy: bool = False
    """A backup of monarch 0.0.x: checked by itself, having no manifest."""

    @property
    def ok(self) -> bool:
        """Whether the backup is sound."""
        return not self.problems


def verify(config: Config, name: str, *, progress: Progress | None = None) -> VerifyResult:
    """Read backup ``name``'s whole archive from the store and check it against its manifest.

    Returns a result listing every problem found (a damaged backup is an answer, not an
    error). Raises :class:`~monarch.errors.BackupNotFound` if there is no such backup, and
    :class:`~monarch.errors.ManifestError` if its manifest cannot be read. A backup of monarch
    0.0.x (or the path of one) is read wholly and checked by itself
    (:func:`monarch.backups.legacy.verify_legacy_name`).
    """
    from monarch.backups.legacy import is_legacy, verify_legacy_name
    from monarch.stores import open_store

    if is_legacy(name):
        return verify_legacy_name(config, name)
    store = open_store(config.backups)
    manifest = read_manifest(store, check_name(name))
    return verify_manifest(store, manifest, progress=progress)


def verify_manifest(
    store: Store, manifest: Manifest, *, progress: Progress | None = None
) -> VerifyResult:
    """Check the archive that ``manifest`` describes (see :func:`verify`)."""
    started = time.monotonic()
    progress = progress or NullProgress()
    if manifest.archive.format != ARCHIVE_FORMAT:
        from monarch.backups.streams import verify_stream

        return verify_stream(store, manifest, progress)
    problems: list[str] = []
    archive = manifest.archive
    try:
        raw = store.reader(archive.key)
    except ObjectNotFound:
        return VerifyResult(manifest.name, (f"the archive {archive.key} is missing",), 0, 0, 0,
                            time.monotonic() - started)
    progress.start("verify", [Item(c.name, c.documents, c.bytes) for c in manifest.collections])
    with raw:
        hashed = HashingReader(raw)
        ends: dict[str, CollectionEnd] = {}
        plain: LimitedReader | None = None
        try:
            hashed, plain = open_held(raw, manifest)
            reader = ArchiveReader(plain, db=manifest.database)
            problems += _compare_headers(manifest, reader.collections)
            for event in reader:
                if isinstance(event, Documents):
                    progress.advance(event.collection, event.count, len(event.data))
                else:
                    ends[event.collection] = event
                    progress.finish_item(event.collection)
            plain.finish()
        except ArchiveError as exc:
            problems.append(f"archive: {exc.message}")
        except StoreError as exc:
            problems.append(f"reading the archive failed: {exc.message}")
        try:
            hashed.drain()  # hash every stored byte, even past a structural error
        except StoreError as exc:
            problems.append(f"reading the archive failed: {exc.message}")
        except ArchiveError as exc:  # more stored bytes than the manifest says: stop there
            problems.append(f"archive: {exc.message}")
    problems += _compare_counts(manifest, ends)
    if hashed.size != archive.size:
        problems.append(f"size: the archive has {hashed.size} bytes, the manifest says "
                        f"{archive.size}")
    if hashed.sha256 != archive.sha256:
        problems.append(f"SHA-256: the archive hashes to {hashed.sha256}, the manifest says "
                        f"{archive.sha256}")
    if plain is not None and not problems and plain.count != archive.uncompressed_size:
        problems.append(f"uncompressed size: {plain.count} bytes, the manifest says "
                        f"{archive.uncompressed_size}")
    seconds = time.monotonic() - started
    documents = sum(e.documents for e in ends.values())
    progress.finish(Summary("verify", len(ends), documents, hashed.size, seconds))
    return VerifyResult(manifest.name, tuple(problems), len(ends), documents, hashed.size,
                        seconds)


def _compare_headers(manifest: Manifest, metas: list[CollectionMeta]) -> list[str]:
    problems: list[str] = []
    in_archive = {m.collection: m for m in metas}
    for entry in manifest.collections:
        meta = in_archive.get(entry.name)
        if meta is None:
            problems.append(f"collection {entry.name!r} is in the manifest, not in the archive")
            continue
        if meta.type != entry.type:
            problems.append(f"collection {entry.name!r} is a {meta.type} in the archive, a "
                            f"{entry.type} in the manifest")
        want = sorted(str(i.get("name")) for i in entry.indexes)
        have = sorted(str(i.get("name")) for i in meta.indexes)
        if want != have:
            problems.append(f"collection {entry.name!r}: indexes {have} in the archive, "
                            f"{want} in the manifest")
    extra = sorted(set(in_archive) - {c.name for c in manifest.collections})
    if extra:
        problems.append("the archive has collection(s) the manifest does not list: "
                        + ", ".join(extra))
    return problems


def _compare_counts(manifest: Manifest, ends: dict[str, CollectionEnd]) -> list[str]:
    problems: list[str] = []
    for entry in manifest.collections:
        end = ends.get(_data_collection(entry.name, entry.type))
        if end is None:
            continue  # already reported: missing from the header, or the archive broke off
        if end.documents != entry.documents:
            problems.append(f"collection {entry.name!r}: {end.documents} documents in the "
                            f"archive, {entry.documents} in the manifest")
        if end.size != entry.bytes:
            problems.append(f"collection {entry.name!r}: {end.size} bytes of documents in the "
                            f"archive, {entry.bytes} in the manifest")
        if end.crc != entry.crc64:
            problems.append(f"collection {entry.name!r}: CRC-64 {end.crc:016x} in the archive, "
                            f"{entry.crc64:016x} in the manifest")
    return problems


def _data_collection(name: str, kind: str) -> str:
    from monarch.archive.meta import BUCKETS_PREFIX, TIMESERIES

    return BUCKETS_PREFIX + name if kind == TIMESERIES else name
