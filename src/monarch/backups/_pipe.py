"""A bounded in-memory pipe between a dump thread (writing) and a restore (reading).

copy_db streams the source's archive straight into the target's restore: no temporary file, and
at most ``capacity`` bytes in between, so memory stays flat whatever the database size. Either
side can stop the other: the writer with :meth:`Pipe.fail` (the reader then raises the writer's
error), the reader with :meth:`Pipe.close_reader` (the writer's next write raises
:class:`PipeClosed`).
"""

from __future__ import annotations

import threading
from collections import deque

from monarch.errors import BackupError
from monarch.io import Buffer, Writable

DEFAULT_CAPACITY = 32 * 1024 * 1024


class PipeClosed(BackupError):
    """The reading side stopped (it failed or finished early); the writer must stop too."""


class Pipe:
    """``write()`` on one thread, ``read()`` on another; see the module docstring."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._eof = False
        self._error: BaseException | None = None
        self._reader_gone = False

    def write(self, data: Buffer, /) -> int:
        """Append ``data`` (copied: writers may reuse their buffers); block while full."""
        size = memoryview(data).nbytes
        if not size:
            return 0
        chunk = bytes(data)
        with self._cond:
            while self._buffered >= self._capacity and not self._reader_gone:
                self._cond.wait()
            if self._reader_gone:
                raise PipeClosed("the restore side stopped reading the copy stream")
            if self._eof:
                raise ValueError("write to a closed pipe")
            self._chunks.append(chunk)
            self._buffered += size
            self._cond.notify_all()
        return size

    def close(self) -> None:
        """The writer is done: the reader gets the rest, then end of stream."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """The writer failed: the reader raises ``error`` once it has read what came before."""
        with self._cond:
            self._error = error
            self._eof = True
            self._cond.notify_all()

    def close_reader(self) -> None:
        """The reader is done: buffered data is dropped and further writes raise."""
        with self._cond:
            self._reader_gone = True
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is buffered when negative); b"" at the end."""
        with self._cond:
            while not self._chunks and not self._eof:
                self._cond.wait()
            if not self._chunks:
                if self._error is not None:
                    raise self._error
                return b""
            parts: list[bytes] = []
            have = 0
            while self._chunks and (size < 0 or have < size):
                chunk = self._chunks.popleft()
                if size >= 0 and have + len(chunk) > size:
                    keep = size - have
                    self._chunks.appendleft(chunk[keep:])
                    chunk = chunk[:keep]
                parts.append(chunk)
                have += len(chunk)
            self._buffered -= have
            self._cond.notify_all()
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Tee:
    """Write everything to two streams (copy_db --keep-backup: the pipe and the store)."""

    def __init__(self, first: Writable, second: Writable) -> None:
        self._targets = (first, second)

    def write(self, data: Buffer, /) -> int:
        for target in self._targets:
            target.write(data)
        return memoryview(data).nbytes
