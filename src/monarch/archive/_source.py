"""Raw BSON framing: walking documents by their length prefix, over bytes or a stream.

Nothing here decodes a document. A document is trusted to be as long as its int32 prefix says,
to lie within the size limits, and to end with a NUL byte; that is all a pass-through needs and
it keeps reading at memory-copy speed rather than BSON-decoding speed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from monarch.archive.errors import TruncatedArchive
from monarch.errors import ArchiveError
from monarch.io import Buffer, Readable

MIN_DOCUMENT_SIZE = 5
"""An empty document: int32 length and the closing NUL."""

MAX_DOCUMENT_SIZE = 16 * 1024 * 1024 + 16 * 1024
"""The server's user limit is 16 MiB; oplog entries may exceed it by its 16 KiB internal slack."""

TERMINATOR = -1
"""The int32 that ends an archive block where a document length would be."""

DEFAULT_READ_SIZE = 4 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 256 * 1024
"""Bytes of documents per run handed out. A restore gathers runs into its insert batches, so
this bounds how far a batch passes its limits; larger runs bought no speed (docs/backups.md)."""

_INT32 = struct.Struct("<i")
unpack_int32 = _INT32.unpack_from

class BadDocument(Exception):
    """Internal: the bytes at ``pos`` cannot be a document. Callers re-raise with context."""

    def __init__(self, pos: int, reason: str) -> None:
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


def scan_documents(buf: Buffer, pos: int, end: int, limit: int) -> tuple[int, int]:
    """Walk whole documents in ``buf[pos:end]``; return ``(new_pos, count)``.

    Stops before a terminator, before a document that is not wholly in ``buf[:end]``, and
    before a document that would end past ``limit`` (though the first document is always taken,
    so a document larger than ``limit`` still makes progress). Raises :class:`BadDocument`.
    """
    count = 0
    unpack = unpack_int32
    while pos + 4 <= end:
        (size,) = unpack(buf, pos)
        if size == TERMINATOR:
            break
        if size < MIN_DOCUMENT_SIZE or size > MAX_DOCUMENT_SIZE:
            raise BadDocument(pos, f"{size} is neither a valid document length nor a terminator")
        after = pos + size
        if after > end or (after > limit and count):
            break
        if buf[after - 1]:
            raise BadDocument(pos, f"the document of {size} bytes does not end with a NUL byte")
        pos = after
        count += 1
    return pos, count


def iter_documents(data: Buffer) -> Iterator[memoryview]:
    """Yield each document of ``data`` (concatenated BSON documents) as a memoryview.

    Raises :class:`~monarch.errors.ArchiveError` if ``data`` is not whole documents.
    """
    view = memoryview(data).cast("B")
    pos, end = 0, len(view)
    while pos < end:
        try:
            after, _ = scan_documents(view, pos, end, pos)
        except BadDocument as exc:
            raise ArchiveError(f"invalid BSON at byte {exc.pos}: {exc.reason}") from None
        if after == pos:
            raise ArchiveError(f"invalid BSON at byte {pos}: a document is cut short")
        yield view[pos:after]
        pos = after


class ByteSource:
    """A stream read in large chunks, with the absolute offset of every byte known.

    Chunks handed out are memoryviews of immutable ``bytes`` that are never reused, so a
    consumer may keep them as long as it likes (and memory stays bounded if it does not).
    """

    def __init__(self, stream: Readable, read_size: int = DEFAULT_READ_SIZE) -> None:
        self._stream = stream
        self._read_size = read_size
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of self._buf[0]
        self._eof = False

    @property
    def offset(self) -> int:
        """Offset in the stream of the next unread byte."""
        return self._base + self._pos

    def ensure(self, size: int) -> bool:
        """Buffer at least ``size`` unread bytes; False if the stream ends first."""
        have = len(self._buf) - self._pos
        if have >= size:
            return True
        parts = [self._buf[self._pos :]] if have else []
        while have < size and not self._eof:
            chunk = self._stream.read(max(self._read_size, size - have))
            if not chunk:
                self._eof = True
                break
            parts.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
            have += len(chunk)
        self._base += self._pos
        self._pos = 0
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        return have >= size

    @property
    def _data_end(self) -> int:
        """Offset in the stream just past the buffered bytes."""
        return self._base + len(self._buf)

    def at_end(self) -> bool:
        """True when every byte of the stream has been consumed."""
        return not self.ensure(1)

    def rest(self) -> bytes:
        """The buffered bytes not yet consumed."""
        return self._buf[self._pos :]

    def take(self, size: int) -> bytes:
        """Consume and return exactly ``size`` bytes (the caller has ensured them)."""
        start = self._pos
        self._pos += size
        return self._buf[start : self._pos]

    def peek_int32(self) -> int:
        """The int32 at the read position (the caller has ensured 4 bytes)."""
        value: int = unpack_int32(self._buf, self._pos)[0]
        return value

    def document_or_terminator(self, what: str) -> bytes | None:
        """Consume one whole document (returned) or a terminator (None); ``what`` names it."""
        start = self.offset
        if not self.ensure(4):
            raise TruncatedArchive(
                f"truncated: the stream ends at byte {self.offset} where {what} should start",
                offset=self.offset,
            )
        size = self.peek_int32()
        if size == TERMINATOR:
            self._pos += 4
            return None
        if size < MIN_DOCUMENT_SIZE or size > MAX_DOCUMENT_SIZE:
            raise ArchiveError(
                f"corrupt: {size} at byte {start} is neither a valid document "
                f"length nor a terminator (reading {what})"
            )
        if not self.ensure(size):
            raise _cut(what, size, start, self._data_end)
        if self._buf[self._pos + size - 1]:
            raise ArchiveError(f"corrupt: {what} at byte {start} does not end with a NUL byte")
        return self.take(size)

    def chunks(
        self, chunk_size: int, *, until_terminator: bool, describe: Callable[[], str]
    ) -> Iterator[tuple[memoryview, int]]:
        """Yield ``(whole documents, count)`` runs of about ``chunk_size`` bytes.

        With ``until_terminator`` the run ends at a terminator (consumed) and the stream ending
        first is truncation; without, it ends cleanly only at the end of the stream on a document
        boundary. ``describe()`` names the place for error messages.
        """
        while True:
            if not self.ensure(4):
                if not until_terminator and self.at_end():
                    return
                raise TruncatedArchive(
                    f"truncated: the stream ends at byte {self._data_end} inside {describe()}",
                    offset=self.offset,
                )
            buf, start = self._buf, self._pos
            try:
                pos, count = scan_documents(buf, start, len(buf), start + chunk_size)
            except BadDocument as exc:
                raise ArchiveError(
                    f"corrupt: at byte {self._base + exc.pos} in {describe()}: {exc.reason}"
                ) from None
            if count:
                self._pos = pos
                yield memoryview(buf)[start:pos], count
                continue
            size = self.peek_int32()
            if size == TERMINATOR:
                if not until_terminator:
                    raise ArchiveError(
                        f"corrupt: at byte {self.offset} in {describe()}: "
                        f"-1 is not a valid document length"
                    )
                self._pos += 4
                return
            if not self.ensure(size):
                raise _cut(describe(), size, self.offset, self._data_end)


def _cut(what: str, size: int, start: int, stream_end: int) -> TruncatedArchive:
    return TruncatedArchive(
        f"truncated: a document of {size} bytes at byte {start} in {what} is cut short "
        f"(the stream ends at byte {stream_end})",
        offset=start,
    )
