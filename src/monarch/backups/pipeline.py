"""Stream wrappers that count and hash bytes on their way to or from a store.

A backup's SHA-256 and size are taken from the very bytes handed to the store (after
compression), and verify takes them from the very bytes the store hands back, so the two
compare like for like.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from monarch.archive.compression import METHODS, open_decompressed_reader
from monarch.archive.limits import LimitedReader
from monarch.errors import ArchiveError
from monarch.io import Buffer, Readable, Writable

if TYPE_CHECKING:
    from monarch.archive.limits import LimitedReader
    from monarch.backups.manifest import Manifest


class HashingWriter:
    """Pass writes on to ``sink``, keeping their total size and SHA-256."""

    def __init__(self, sink: Writable) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Buffer, /) -> int:
        self._hash.update(data)
        self.size += memoryview(data).nbytes
        self._sink.write(data)
        return memoryview(data).nbytes

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of everything written so far."""
        return self._hash.hexdigest()


class HashingReader:
    """Read from ``source``, keeping the total size and SHA-256 of what was read."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self._hash.update(data)
            self.size += len(data)
        return data

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read to the end, so the hash covers the whole stream."""
        while self.read(chunk):
            pass

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of everything read so far."""
        return self._hash.hexdigest()


class CountingWriter:
    """Pass writes on to ``sink``, counting bytes (the uncompressed archive size)."""

    def __init__(self, sink: Writable) -> None:
        self._sink = sink
        self.size = 0

    def write(self, data: Buffer, /) -> int:
        self.size += memoryview(data).nbytes
        self._sink.write(data)
        return memoryview(data).nbytes


def open_held(raw: Readable, manifest: Manifest) -> tuple[HashingReader, LimitedReader]:
    """A backup's stored archive ``raw``, hashed, decompressed and held to its ``manifest``.

    Neither the stored bytes nor the decompressed ones may pass the manifest's sizes: reading
    stops at the first byte beyond either (a decompression bomb under a backup's name is
    refused after at most the backup's own size), and the decompressed stream must reach its
    size exactly. Both raise :class:`~monarch.errors.ArchiveError` from ``read``; the caller
    still compares the stored bytes' size and SHA-256 at the end (``hashed``).
    """
    archive = manifest.archive
    name = manifest.name
    if archive.compression not in METHODS:
        raise ArchiveError(f"backup {name!r}: its manifest names an unknown compression "
                           f"{archive.compression!r}")
    hint = "the stored archive is damaged or was replaced; restore another backup"
    hashed = HashingReader(LimitedReader(
        raw, archive.size, what=f"backup {name!r}'s stored archive",
        why="the size its manifest records", hint=hint))
    plain = LimitedReader(
        open_decompressed_reader(hashed, archive.compression), archive.uncompressed_size,
        what=f"backup {name!r}'s archive, decompressed,",
        why="the uncompressed size its manifest records", exact=True, hint=hint)
    return hashed, plain
