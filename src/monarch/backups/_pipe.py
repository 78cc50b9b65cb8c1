"""A bounded in-memory pipe between a dump thread (writing) and a restore (reading).

copy_db streams the source's archive straight into the target's restore: no temporary file, and
at most ``capacity`` bytes in between, so memory stays flat whatever the database size. Either
side can stop the other: the writer with :meth:`Pipe.fail` (the reader then raises the writer's
error), the reader with :meth:`Pipe.close_reader` (the writer's next write raises
:class:`PipeClosed`).

:class:`WriterThread` puts a pipe in front of any stream, so that a backup's compression,
SHA-256 and upload run on a thread of their own while the dump goes on producing.
"""

from __future__ import annotations

import threading
from collections import deque

from monarch.errors import BackupError
from monarch.io import Buffer, Writable

DEFAULT_CAPACITY = 8 * 1024 * 1024
"""Measured on the wire server (docs/backups.md): 8 MiB kept copy_db as fast as 32 MiB did,
with 24 MiB less memory."""


class PipeClosed(BackupError):
    """The reading side stopped (it failed or finished early); the writer must stop too."""


class Pipe:
    """``write()`` on one thread, ``read()`` on another; see the module docstring."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._chunks: deque[Buffer] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._eof = False
        self._error: BaseException | None = None
        self._reader_gone = False

    def write(self, data: Buffer, /) -> int:
        """Append ``data``; block while full. Immutable bytes (or a view of them) are kept as
        they are; anything else is copied, since writers may reuse their buffers."""
        size = memoryview(data).nbytes
        if not size:
            return 0
        chunk = frozen(data)
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
            parts: list[Buffer] = []
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
        first = parts[0]
        return first if len(parts) == 1 and isinstance(first, bytes) else b"".join(parts)

    def next_chunk(self) -> Buffer | None:
        """The next chunk as it was written (no copy); None at the end or once the reader
        closed. Raises the writer's error like :meth:`read`."""
        with self._cond:
            while not self._chunks and not self._eof and not self._reader_gone:
                self._cond.wait()
            if not self._chunks:
                if self._error is not None and not self._reader_gone:
                    raise self._error
                return None
            chunk = self._chunks.popleft()
            self._buffered -= len(chunk)
            self._cond.notify_all()
        return chunk


class Tee:
    """Write everything to two streams (copy_db --keep-backup: the pipe and the store)."""

    def __init__(self, first: Writable, second: Writable) -> None:
        self._targets = (first, second)

    def write(self, data: Buffer, /) -> int:
        for target in self._targets:
            target.write(data)
        return memoryview(data).nbytes


class WriterThread:
    """A :class:`~monarch.io.Writable` whose writes reach ``sink`` on a thread of its own.

    The caller's ``write`` returns as soon as the data is queued (at most ``capacity`` bytes
    wait), so whatever ``sink`` does (compress, hash, upload: C code that releases the GIL)
    overlaps with the caller's own work. A failure of ``sink`` is raised by the next
    :meth:`write` or by :meth:`close`. End with :meth:`close` (everything written) or
    :meth:`abort` (queued data dropped); either waits for the thread.
    """

    def __init__(self, sink: Writable, capacity: int = DEFAULT_CAPACITY,
                 name: str = "monarch-writer") -> None:
        self._sink = sink
        self._pipe = Pipe(capacity)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, data: Buffer, /) -> int:
        """Queue ``data`` for the sink (see :meth:`Pipe.write` on copies); block while full."""
        try:
            return self._pipe.write(data)
        except PipeClosed:
            if self._error is not None:
                raise self._error from None
            raise

    def close(self) -> None:
        """Wait until the sink has everything; raise its error if it failed."""
        self._pipe.close()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Drop what is queued and wait for the write in progress, if any, to return."""
        self._pipe.close_reader()
        self._thread.join()

    def _run(self) -> None:
        try:
            while (chunk := self._pipe.next_chunk()) is not None:
                self._sink.write(chunk)
        except BaseException as exc:  # raised to the caller by its next write or close
            self._error = exc
            self._pipe.close_reader()


def frozen(data: Buffer) -> Buffer:
    """``data`` itself when no one can change it (bytes, or a view of bytes), else a copy."""
    if isinstance(data, bytes):
        return data
    view = memoryview(data)
    if isinstance(view.obj, bytes) and view.format == "B" and view.c_contiguous:
        return view
    return bytes(view)
