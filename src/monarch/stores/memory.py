"""A complete store kept in this process's memory: ``memory://name``, for fast tests.

Stores opened with the same name in one process share their objects, so a test can write through
one and read through another. Unfinished uploads are tracked like S3's pending multipart uploads:
``cleanup()`` discards those started long enough ago, and their ``commit()`` then fails.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, ClassVar

from monarch.config import StoreConfig
from monarch.errors import StoreError
from monarch.stores.base import (
    ObjectInfo,
    ObjectNotFound,
    Retention,
    UploadBase,
    refuse_retention,
)
from monarch.stores.local import check_key


@dataclass
class _Space:
    """The shared state behind every store of one name."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    objects: dict[str, tuple[bytes, datetime]] = field(default_factory=dict)
    pending: dict[int, MemoryUpload] = field(default_factory=dict)


class MemoryStore:
    """Objects in a dictionary shared by every ``MemoryStore`` of the same name."""

    _spaces: ClassVar[dict[str, _Space]] = {}
    _spaces_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: StoreConfig) -> None:
        scheme, _, name = config.url.partition("://")
        if scheme != "memory" or not name:
            raise StoreError(f"a memory store needs a URL like memory://name, not {config.url!r}")
        self.name = name
        self.display_url = f"memory://{name}"
        with self._spaces_lock:
            self._space = self._spaces.setdefault(name, _Space())

    @classmethod
    def reset(cls, name: str | None = None) -> None:
        """Forget the objects of the store called ``name`` (of every store when None)."""
        with cls._spaces_lock:
            if name is None:
                cls._spaces.clear()
            else:
                cls._spaces.pop(name, None)

    def pending(self) -> int:
        """How many uploads are neither committed nor aborted (what ``cleanup()`` would see)."""
        with self._space.lock:
            return len(self._space.pending)

    can_lock = False
    """Memory holds no retention: tests of locking use an S3 server that enforces it."""

    def writer(
        self, key: str, *, exclusive: bool = False, retention: Retention | None = None
    ) -> MemoryUpload:
        """Start writing ``key``; nothing is visible until ``commit()``. No ``retention``."""
        refuse_retention(self.display_url, retention)
        return MemoryUpload(self, check_key(key), exclusive)

    def reader(self, key: str) -> BinaryIO:
        """A stream over the object's bytes as committed; a missing key raises ObjectNotFound."""
        with self._space.lock:
            found = self._space.objects.get(check_key(key))
        if found is None:
            raise self._not_found(key)
        return io.BytesIO(found[0])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the committed objects whose keys start with ``prefix``, in key order."""
        with self._space.lock:
            items = sorted(self._space.objects.items())
        for key, (data, modified) in items:
            if key.startswith(prefix):
                yield ObjectInfo(key, len(data), modified)

    def retention(self, key: str) -> Retention | None:
        """None: memory objects have no retention (a missing key raises ObjectNotFound)."""
        with self._space.lock:
            if check_key(key) not in self._space.objects:
                raise self._not_found(key)
        return None

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key raises :class:`ObjectNotFound`."""
        with self._space.lock:
            if self._space.objects.pop(check_key(key), None) is None:
                raise self._not_found(key)

    def cleanup(self, older_than: float = 3600.0) -> int:
        """Discard uploads started more than ``older_than`` seconds ago; return how many."""
        limit = time.monotonic() - older_than
        with self._space.lock:
            stale = [u for u in self._space.pending.values() if u.started <= limit]
            for upload in stale:
                del self._space.pending[upload.number]
                upload.discard("removed by cleanup")
        return len(stale)

    def _not_found(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(f"no object {key!r} in {self.display_url}")


class MemoryUpload(UploadBase):
    """A pending in-memory object."""

    _numbers: ClassVar[itertools.count[int]] = itertools.count()

    def __init__(self, store: MemoryStore, key: str, exclusive: bool) -> None:
        self._store = store
        self._key = key
        self._exclusive = exclusive
        self._buffer = bytearray()
        self._state = "open"
        self.started = time.monotonic()
        self.number = next(self._numbers)
        with store._space.lock:
            store._space.pending[self.number] = self

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Append ``data``; return how many bytes were taken."""
        self._check_open()
        self._buffer += data
        return memoryview(data).nbytes

    def commit(self) -> None:
        """Make the object visible under its key. Idempotent."""
        if self._state == "committed":
            return
        self._check_open()
        space = self._store._space
        with space.lock:
            if self._exclusive and self._key in space.objects:
                self._finish("aborted")
                raise self._already_exists(self._store.display_url)
            space.objects[self._key] = (bytes(self._buffer), datetime.now(UTC))
            self._finish("committed")

    def abort(self) -> None:
        """Discard the bytes written. Does nothing after commit or a previous abort."""
        if self._state != "open":
            return
        with self._store._space.lock:
            self._finish("aborted")

    def discard(self, reason: str) -> None:
        """Drop the buffer for ``reason`` (the space's lock is held by the caller)."""
        self._state = reason
        self._buffer = bytearray()

    def _finish(self, state: str) -> None:
        self._store._space.pending.pop(self.number, None)
        self.discard(state)
