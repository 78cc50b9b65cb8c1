"""Streaming compression around an archive: zstd (monarch's default), gzip, or none.

gzip output is one standard gzip member, what ``mongorestore --gzip`` reads; gzip input may be
several members. ISA-L (package ``isal``) does gzip at levels 1-3 when it is installed: measured
here on dump-like BSON it compresses 4-5x faster than zlib at a better ratio than zlib's level 1,
and decompresses 2-3x faster. Higher levels, or a machine without it, use zlib.

Memory stays bounded: input is fed to a decompressor in small slices, and output leaves as soon
as it is produced.

zstandard and isal are imported when a stream of theirs is opened: the archive format is read
and written (by the MongoDB engine's dump and restore, say) without either.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import Literal, Protocol

from monarch.archive.errors import TruncatedArchive
from monarch.errors import ArchiveError
from monarch.io import Buffer, Readable, Writable

Method = Literal["zstd", "gzip", "none"]
METHODS: tuple[Method, ...] = ("zstd", "gzip", "none")

DEFAULT_ZSTD_LEVEL = 1
"""On dump-like BSON, level 3 output is ~8% smaller but the whole write path runs ~30% slower
(about 170-190 MiB/s against 220-280 on two cores): a backup before a migration should not
wait on its compressor."""

DEFAULT_GZIP_LEVEL = 1
"""Level 6 (mongodump's) compresses ~25% smaller but ~3x slower on zlib and ~10x slower than
ISA-L's level 1: at level 1 gzip output keeps up with a database dump; at 6 it is the bottleneck."""

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_GZIP_WBITS = 31  # a gzip header and trailer around raw deflate
_INPUT_READ = 1024 * 1024
_INPUT_SLICE = 4 * 1024
"""Compressed bytes per decompress() call: bounds its output (4 MiB at gzip's largest ratio),
and names where damage was found to within this many bytes; measured as fast as 64 KiB."""


@functools.cache
def _isal_zlib() -> ModuleType | None:
    """ISA-L's zlib, or None where isal is not installed."""
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal ships wheels for the usual platforms
        return None
    return isal_zlib


class _Compressor(Protocol):
    def compress(self, data: Buffer, /) -> Buffer: ...
    def flush(self) -> bytes: ...


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: Buffer, /) -> bytes: ...


class CompressedWriter:
    """A write-only stream that compresses into ``raw_out``.

    :meth:`close` ends the compressed stream; it closes ``raw_out`` only if asked to when
    opened. Usable as a context manager (which closes it only when no exception is raised,
    so a failed write is never made to look like a complete stream).
    """

    def __init__(self, raw_out: Writable, compressor: _Compressor, *, close_raw: bool) -> None:
        self._raw = raw_out
        self._compressor = compressor
        self._close_raw = close_raw
        self.closed = False

    def write(self, data: Buffer) -> int:
        """Compress ``data``; return its length."""
        if self.closed:
            raise ValueError("write to a closed compressed stream")
        out = self._compressor.compress(data)
        if out:
            self._raw.write(out)
        return len(data)

    def close(self) -> None:
        """Finish the compressed stream (and close ``raw_out`` if asked at opening)."""
        if self.closed:
            return
        self.closed = True
        tail = self._compressor.flush()
        if tail:
            self._raw.write(tail)
        if self._close_raw:
            close = getattr(self._raw, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> CompressedWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()


class _Passthrough:
    def compress(self, data: Buffer) -> Buffer:
        return data

    def flush(self) -> bytes:
        return b""


def open_compressed_writer(
    raw_out: Writable, method: Method, level: int | None = None, *, close_raw: bool = False
) -> CompressedWriter:
    """Return a stream that writes ``method``-compressed data to ``raw_out``.

    ``level``: zstd 1-22 (default 1); gzip 1-9 as in gzip(1) (default 1).
    """
    compressor: _Compressor
    if method == "zstd":
        level = DEFAULT_ZSTD_LEVEL if level is None else level
        if not 1 <= level <= 22:
            raise ValueError(f"zstd level must be 1-22, not {level}")
        # Worker threads compress while the caller goes on producing the next batch.
        # The frame checksum lets a reader refuse damaged data before parsing it.
        import zstandard

        compressor = zstandard.ZstdCompressor(
            level=level, threads=-1, write_checksum=True
        ).compressobj()
    elif method == "gzip":
        level = DEFAULT_GZIP_LEVEL if level is None else level
        if not 1 <= level <= 9:
            raise ValueError(f"gzip level must be 1-9, not {level}")
        isal = _isal_zlib()
        backend: ModuleType = isal if isal is not None and level <= 3 else zlib
        compressor = backend.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    elif method == "none":
        compressor = _Passthrough()
    else:
        raise ValueError(f"unknown compression {method!r}; expected one of {', '.join(METHODS)}")
    return CompressedWriter(raw_out, compressor, close_raw=close_raw)


def sniff(head: bytes) -> Method | None:
    """Name the compression whose magic ``head`` starts with (None when it is neither)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def open_decompressed_reader(raw_in: Readable, method: Method | None = None) -> Readable:
    """Return a stream of ``raw_in``'s decompressed bytes (``read(n)``; b"" at the end).

    With ``method`` None the compression is recognised by its magic bytes, anything else being
    read as uncompressed. Corrupt or truncated compressed data raises
    :class:`~monarch.errors.ArchiveError` from ``read``.
    """
    head = _read_up_to(raw_in, 4)
    found = sniff(head)
    if method is None:
        method = found or "none"
    elif method not in METHODS:
        raise ValueError(f"unknown compression {method!r}; expected one of {', '.join(METHODS)}")
    elif method != "none" and found is not None and found != method:
        raise ArchiveError(
            f"expected {method} data but it looks {found}-compressed",
            hint=f"read it with compression {found!r}",
        )
    source = _Prefixed(head, raw_in)
    if method == "none":
        return source
    if method == "zstd":
        import zstandard

        return _FrameReader(
            source, zstandard.ZstdDecompressor().decompressobj, "zstd", (zstandard.ZstdError,)
        )
    backend: ModuleType = _isal_zlib() or zlib
    return _FrameReader(
        source, lambda: backend.decompressobj(_GZIP_WBITS), "gzip", (backend.error, zlib.error)
    )


def _read_up_to(raw: Readable, size: int) -> bytes:
    parts: list[bytes] = []
    have = 0
    while have < size:
        chunk = raw.read(size - have)
        if not chunk:
            break
        parts.append(bytes(chunk))
        have += len(chunk)
    return b"".join(parts)


class _Prefixed:
    """``raw`` with ``head`` (already read from it) put back in front."""

    def __init__(self, head: bytes, raw: Readable) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1, /) -> bytes:
        head, self._head = self._head, b""
        if size < 0:
            return head + self._raw.read()
        if len(head) >= size:
            self._head = head[size:]
            return head[:size]
        return head + self._raw.read(size - len(head))


class _FrameReader:
    """Concatenated gzip members or zstd frames, decompressed on demand."""

    def __init__(
        self,
        raw: Readable,
        new: Callable[[], _Decompressor],
        name: str,
        errors: tuple[type[Exception], ...],
    ) -> None:
        self._raw = raw
        self._new = new
        self._name = name
        self._errors = errors
        self._decompressor = new()
        self._started = False  # the current frame has been fed some input
        self._frames = 0  # frames decompressed to their end
        self._input = memoryview(b"")
        self._consumed = 0  # compressed bytes fed so far, for error messages
        self._frame_start = 0  # where the current frame (gzip member) starts
        self._pending = b""
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_INPUT_READ * 4), b""))
        parts: list[bytes] = []
        have = 0
        while have < size:
            if not self._pending:
                if self._done:
                    break
                self._pending = self._step()
                continue
            piece = self._pending[: size - have]
            self._pending = self._pending[len(piece) :]
            parts.append(piece)
            have += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _step(self) -> bytes:
        if not self._input:
            chunk = self._raw.read(_INPUT_READ)
            if not chunk:
                self._done = True
                if self._started:
                    raise TruncatedArchive(
                        f"truncated: the {self._name} stream ends inside a compressed frame "
                        f"(after {self._consumed} compressed bytes)",
                        offset=self._consumed,
                    )
                if not self._frames:
                    raise TruncatedArchive(f"truncated: the {self._name} stream is empty", offset=0)
                return b""
            self._input = memoryview(chunk)
        piece, self._input = self._input[:_INPUT_SLICE], self._input[_INPUT_SLICE:]
        self._started = True
        try:
            out = self._decompressor.decompress(piece)
        except self._errors as exc:
            raise self._corrupt(exc, len(piece)) from None
        self._consumed += len(piece)
        if self._decompressor.eof:
            # A frame ended: what followed it in this slice starts the next frame, if any.
            tail = self._decompressor.unused_data
            if tail:
                self._input = memoryview(tail + bytes(self._input))
                self._consumed -= len(tail)
            self._decompressor = self._new()
            self._frame_start = self._consumed
            self._started = False
            self._frames += 1
        return out

    def _corrupt(self, exc: Exception, fed: int) -> ArchiveError:
        where = f"compressed bytes {self._consumed:,}-{self._consumed + fed - 1:,}"
        if "check" in str(exc).lower():  # gzip's CRC-32 or zstd's checksum, at a frame's end
            kind = "member" if self._name == "gzip" else "frame"
            return ArchiveError(
                f"corrupt {self._name} data: the checksum of the {self._name} {kind} that "
                f"starts at compressed byte {self._frame_start:,} does not match ({where}); the "
                f"damage is somewhere in that {kind}: {exc}",
                hint="the file is damaged; use another copy of it")
        return ArchiveError(f"corrupt {self._name} data in {where}: {exc}",
                            hint="the file is damaged; use another copy of it")
