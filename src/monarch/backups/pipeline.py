"""Stream wrappers that count and hash bytes on their way to or from a store.

A backup's SHA-256 and size are taken from the very bytes handed to the store (after
compression), and verify takes them from the very bytes the store hands back, so the two
compare like for like.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

Buffer = bytes | bytearray | memoryview


class _Sink(Protocol):
    def write(self, data: Buffer, /) -> int: ...


class _Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class HashingWriter:
    """Pass writes on to ``sink``, keeping their total size and SHA-256."""

    def __init__(self, sink: _Sink) -> None:
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

    def __init__(self, source: _Source) -> None:
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

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self.size = 0

    def write(self, data: Buffer, /) -> int:
        self.size += memoryview(data).nbytes
        self._sink.write(data)
        return memoryview(data).nbytes


class CountingReader:
    """Read from ``source``, counting bytes (the uncompressed archive size on verify)."""

    def __init__(self, source: _Source) -> None:
        self._source = source
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self.size += len(data)
        return data
