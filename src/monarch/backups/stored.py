"""Reading a stored backup back, held to its manifest: the one checked reader that restore,
copy_db's kept backups and verify all use.

    store ─▶ size cap + SHA-256 ─▶ [age decryption] ─▶ decompression ─▶ uncompressed size cap
          ─▶ the engine

An encrypted backup (its manifest opened with the keys: catalog.open_manifest) is decrypted on
the way, streamed (encryption.DecryptingReader): a wrong identity is refused before the engine
reads a byte, and ciphertext that fails age's authentication raises ArchiveError from ``read``
at the first damaged chunk, inside the restore and before its swap.

:class:`CheckedStream` is the decompressed archive as bytes. Reading stops at the first byte
beyond either of the manifest's sizes (a decompression bomb under a backup's name is refused
after at most the backup's own size), and at the end of the stream its stored size, SHA-256
and uncompressed size must match. Raising, the mismatch comes out of ``read`` itself, inside
the engine's restore and before its swap, so a damaged backup never replaces anything; not
raising (verify), :meth:`CheckedStream.finish` lists the problems.

A mongodump archive is also held to the manifest collection by collection
(:class:`CheckedArchive`): the same collections, types and indexes, then each collection's
count, bytes and CRC-64 as its end block is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monarch.archive.compression import METHODS, open_decompressed_reader
from monarch.archive.events import CollectionEnd
from monarch.archive.limits import LimitedReader
from monarch.archive.meta import BUCKETS_PREFIX, TIMESERIES, CollectionMeta
from monarch.archive.reader import ArchiveReader
from monarch.backups.encryption import DecryptingReader
from monarch.backups.keys import BackupKeys
from monarch.backups.pipeline import HashingReader
from monarch.errors import ArchiveError, ManifestError
from monarch.stores.base import ObjectNotFound

if TYPE_CHECKING:
    from monarch.archive.events import Event
    from monarch.backups.manifest import Manifest
    from monarch.engines.base import CollectionDump
    from monarch.stores.base import Store

_DAMAGED = "the stored archive is damaged or was replaced; restore another backup"


class CheckedStream:
    """A stored backup's archive, decompressed and held to its manifest (see the module)."""

    def __init__(self, store: Store, manifest: Manifest, *, raise_on_mismatch: bool,
                 keys: BackupKeys | None = None) -> None:
        archive = manifest.archive
        self.manifest = manifest
        self._raise = raise_on_mismatch
        if archive.compression not in METHODS:
            raise ArchiveError(f"backup {manifest.name!r}: its manifest names an unknown "
                               f"compression {archive.compression!r}")
        identities = None
        if manifest.encryption is not None:
            if manifest.sealed:
                raise ManifestError(f"backup {manifest.name!r} is encrypted: open its manifest "
                                    "with the keys first")
            identities = (keys or BackupKeys()).identities(
                manifest.encryption, f"backup {manifest.name!r}")
        try:
            self._raw = store.reader(archive.key)
        except ObjectNotFound:
            if not raise_on_mismatch:
                raise
            raise ArchiveError(f"backup {manifest.name!r}: its archive {archive.key} is "
                               "missing from the store; nothing was restored") from None
        self._decrypted: DecryptingReader | None = None
        try:
            self.hashed = HashingReader(LimitedReader(
                self._raw, archive.size, what=f"backup {manifest.name!r}'s stored archive",
                why="the size its manifest records", hint=_DAMAGED))
            if identities is not None:
                self._decrypted = DecryptingReader(
                    self.hashed, identities, f"backup {manifest.name!r}'s encrypted archive")
            self._plain = LimitedReader(
                open_decompressed_reader(self._decrypted or self.hashed, archive.compression),
                archive.uncompressed_size,
                what=f"backup {manifest.name!r}'s archive, decompressed,",
                why="the uncompressed size its manifest records", exact=True, hint=_DAMAGED)
        except BaseException:
            self.close()
            raise
        self.plain = 0
        """Bytes of the decompressed archive read so far."""

    def read(self, size: int = -1, /) -> bytes:
        data = self._plain.read(size)
        self.plain += len(data)
        if not data and size != 0 and self._raise:
            self.raise_on_problems()
        return data

    def raise_on_problems(self) -> None:
        """Raise ArchiveError naming every way the archive does not match its manifest."""
        problems = self.finish()
        if problems:
            raise ArchiveError(
                f"backup {self.manifest.name!r} does not match its manifest: "
                f"{'; '.join(problems)}; nothing was restored",
                hint="the stored archive is damaged; restore another backup",
            )

    def finish(self) -> list[str]:
        """Read what is left of the archive; how it does not match the manifest."""
        archive = self.manifest.archive
        problems: list[str] = []
        try:
            while data := self._plain.read(1024 * 1024):  # past the last event the engine read
                self.plain += len(data)
        except ArchiveError as exc:  # more, or fewer, bytes than the manifest says
            problems.append(exc.message)
        if self._decrypted is not None:
            self._decrypted.close()  # its thread stops reading: the rest is hashed here
        try:
            self.hashed.drain()
        except ArchiveError as exc:
            problems.append(exc.message)
        problems += stored_problems(self.hashed, self.manifest)
        if not problems and self.plain != archive.uncompressed_size:
            problems.append(f"uncompressed size: {self.plain} bytes, the manifest says "
                            f"{archive.uncompressed_size}")
        return problems

    def close(self) -> None:
        if self._decrypted is not None:
            self._decrypted.close()
        self._raw.close()

    def __enter__(self) -> CheckedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CheckedArchive:
    """A backup's mongodump archive, read as events and held to its manifest collection by
    collection; a mismatch raises :class:`ArchiveError` from the iteration, before the swap."""

    def __init__(self, stream: CheckedStream) -> None:
        self._stream = stream
        self._manifest = stream.manifest
        self._reader = ArchiveReader(stream, db=stream.manifest.database)
        problems = header_problems(self._manifest, {
            m.collection: (m.type, _index_names(m.indexes)) for m in self._reader.collections})
        if problems:
            raise _mismatch(self._manifest.name, problems)

    @property
    def header(self) -> dict[str, Any]:
        return self._reader.header

    @property
    def collections(self) -> list[CollectionMeta]:
        return self._reader.collections

    def __iter__(self) -> Iterator[Event]:
        by_data = {data_collection(c.name, c.type): c for c in self._manifest.collections}
        for event in self._reader:
            if isinstance(event, CollectionEnd):
                entry = by_data.get(event.collection)
                problems = [] if entry is None else count_problems(
                    entry.name, (entry.documents, entry.bytes, entry.crc64),
                    (event.documents, event.size, event.crc))
                if problems:
                    raise _mismatch(self._manifest.name, problems)
            yield event
        self._stream.raise_on_problems()


def header_problems(manifest: Manifest,
                    found: Mapping[str, tuple[str, list[str]]]) -> list[str]:
    """How the collections ``found`` in an archive (name -> type, index names) differ from
    the manifest's."""
    problems: list[str] = []
    for entry in manifest.collections:
        have = found.get(entry.name)
        if have is None:
            problems.append(f"collection {entry.name!r} is in the manifest, not in the archive")
            continue
        kind, indexes = have
        if kind != entry.type:
            problems.append(f"collection {entry.name!r} is a {kind} in the archive, a "
                            f"{entry.type} in the manifest")
        want = _index_names(entry.indexes)
        if want != indexes:
            problems.append(f"collection {entry.name!r}: indexes {indexes} in the archive, "
                            f"{want} in the manifest")
    extra = sorted(set(found) - {c.name for c in manifest.collections})
    if extra:
        problems.append("the archive has collection(s) the manifest does not list: "
                        + ", ".join(extra))
    return problems


def count_problems(name: str, want: tuple[int, int, int], have: tuple[int, int, int]) -> list[str]:
    """How one collection's (documents, bytes, CRC-64) in the archive differ from the
    manifest's."""
    problems = []
    if have[0] != want[0]:
        problems.append(f"collection {name!r}: {have[0]} documents in the archive, {want[0]} "
                        "in the manifest")
    if have[1] != want[1]:
        problems.append(f"collection {name!r}: {have[1]} bytes of documents in the archive, "
                        f"{want[1]} in the manifest")
    if have[2] != want[2]:
        problems.append(f"collection {name!r}: CRC-64 {have[2]:016x} in the archive, "
                        f"{want[2]:016x} in the manifest")
    return problems


def collection_problems(manifest: Manifest, found: Sequence[CollectionDump]) -> list[str]:
    """How the collections an engine's check read from an archive differ from the manifest:
    the same checks :class:`CheckedArchive` makes while restoring, all at once."""
    metas = {c.name: CollectionMeta("", c.name, c.metadata, c.type) for c in found}
    problems = header_problems(manifest, {name: (meta.type, _index_names(meta.indexes))
                                          for name, meta in metas.items()})
    read = {c.name: c for c in found}
    for entry in manifest.collections:
        have = read.get(entry.name)
        if have is not None:
            problems += count_problems(entry.name, (entry.documents, entry.bytes, entry.crc64),
                                       (have.documents, have.size, have.crc64))
    return problems


def data_collection(name: str, kind: str) -> str:
    """The collection that holds ``name``'s documents in an archive (a time series' buckets)."""
    return BUCKETS_PREFIX + name if kind == TIMESERIES else name


def stored_problems(hashed: HashingReader, manifest: Manifest) -> list[str]:
    """How the stored bytes read through ``hashed`` differ from the manifest's size and
    SHA-256."""
    archive = manifest.archive
    problems = []
    if hashed.size != archive.size:
        problems.append(f"size: the archive has {hashed.size} bytes, the manifest says "
                        f"{archive.size}")
    if hashed.sha256 != archive.sha256:
        problems.append(f"SHA-256: the archive hashes to {hashed.sha256}, the manifest says "
                        f"{archive.sha256}")
    return problems


def check_stored(store: Store, manifest: Manifest) -> list[str]:
    """Read ``manifest``'s archive as stored (no decryption or decompression): how its size
    and SHA-256 differ from the manifest's. For verify, when the archive cannot even be
    opened (its first encrypted chunk is damaged)."""
    with store.reader(manifest.archive.key) as raw:
        hashed = HashingReader(raw)
        hashed.drain()
    return stored_problems(hashed, manifest)


def open_checked(store: Store, manifest: Manifest, *, raise_on_mismatch: bool = True,
                 keys: BackupKeys | None = None) -> CheckedStream:
    """Open ``manifest``'s archive as a :class:`CheckedStream` (decrypted with ``keys`` when
    encrypted). A missing archive raises ArchiveError, or ObjectNotFound when not raising on
    mismatches (verify reports it)."""
    return CheckedStream(store, manifest, raise_on_mismatch=raise_on_mismatch, keys=keys)


def _index_names(indexes: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(str(i.get("name")) for i in indexes)


def _mismatch(name: str, problems: list[str]) -> ArchiveError:
    return ArchiveError(
        f"backup {name!r} does not match its manifest: {'; '.join(problems)}; nothing was "
        "restored",
        hint=f"run `monarch verify {name}`; restore another backup",
    )


