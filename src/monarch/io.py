"""The stream types every layer passes bytes through: dump -> compression -> store, and back.

Anything with ``write`` or ``read`` of this shape will do (a file, a store upload, a pipe);
monarch never needs more of a stream than these two methods.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

Buffer = bytes | bytearray | memoryview
"""What may be written: bytes, or a view of them (no copy needed)."""


class Writable(Protocol):
    """Where bytes go: ``write(bytes-like)``."""

    def write(self, data: Buffer, /) -> object: ...


@runtime_checkable
class Readable(Protocol):
    """Where bytes come from: ``read(n)`` returning b"" only at the end. (``isinstance``
    tells a byte stream from a dump reader, which has no ``read``.)"""

    def read(self, size: int = -1, /) -> bytes: ...
