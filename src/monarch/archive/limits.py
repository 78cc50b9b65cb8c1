"""Holding a stream to a size: reading stops at the first byte beyond it.

Every path that decompresses a dump on its way to a database (restore, copy_db through a
backup, verify) reads through a :class:`LimitedReader`, so a decompression bomb, or a manifest
that understates its archive, is refused after at most ``limit`` bytes instead of filling the
target's staging area. A backup's limit is its manifest's sizes (and the stream must reach them
exactly: ``exact=True``); a dump without a manifest (a mongodump archive or directory) gets the
restore ceiling, :func:`restore_ceiling`.
"""

from __future__ import annotations

from monarch.errors import ArchiveError
from monarch.io import Readable
from monarch.sizes import parse_size

DEFAULT_RATIO = 100
"""Without a configured ceiling, a dump may decompress to this many times its size on disk.
Real BSON compresses 3-15 times (mongodump's gzip, monarch's zstd); a bomb, hundreds to
thousands of times."""

DEFAULT_FLOOR = 256 * 1024 * 1024
"""...but never less than this, so a small dump of repetitive documents still restores."""

_READ = 1024 * 1024


class SizeLimitExceeded(ArchiveError):
    """A stream is longer (or, held to an exact size, shorter) than it may be.

    ``limit`` is the size it was held to; ``size`` how many bytes it had when refused
    (``limit + 1`` when it was too long: reading stopped there).
    """

    def __init__(self, message: str, *, limit: int, size: int, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.limit = limit
        self.size = size


class LimitedReader:
    """``source``, read through, refusing its byte number ``limit + 1``.

    ``what`` names the stream in errors ("backup 'x''s decompressed archive") and ``why`` the
    limit ("the uncompressed size its manifest records"). With ``exact``, reaching the end of
    ``source`` short of ``limit`` raises too. ``already`` counts bytes read before ``source``
    against the same limit (several files of one dump). Either raises
    :class:`SizeLimitExceeded` from :meth:`read` (or :meth:`finish`). ``count`` is the bytes
    passed through so far.
    """

    def __init__(self, source: Readable, limit: int, *, what: str, why: str,
                 exact: bool = False, hint: str | None = None, already: int = 0) -> None:
        if limit < 0:
            raise ValueError(f"a size limit cannot be negative ({limit})")
        self._source = source
        self.limit = limit
        self._what = what
        self._why = why
        self._exact = exact
        self._hint = hint
        self.count = already

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_READ), b""))
        room = self.limit - self.count
        # One byte more than there is room for: if it comes, the stream is too long.
        data = self._source.read(min(size, room + 1)) if size else b""
        if len(data) > room:
            self.count = self.limit + 1
            raise SizeLimitExceeded(
                f"{self._what} is larger than {self._why} ({self.limit:,} bytes): reading "
                f"stopped at byte {self.limit + 1:,}",
                limit=self.limit, size=self.limit + 1, hint=self._hint)
        self.count += len(data)
        if not data and size and self._exact and self.count != self.limit:
            raise SizeLimitExceeded(
                f"{self._what} is truncated: it ends after {self.count:,} bytes, short of "
                f"{self._why} ({self.limit:,} bytes)",
                limit=self.limit, size=self.count, hint=self._hint)
        return data

    def finish(self) -> None:
        """Read what is left (never more than the limit allows) and check the size."""
        while self.read(_READ):
            pass


def restore_ceiling(stored: int, configured: str | int | None, where: str) -> tuple[int, str]:
    """The most bytes a dump without a manifest may decompress to, and how to say why.

    ``stored`` is its size on disk; ``configured`` the user's ceiling (``--max-size`` or
    ``[backups] max_restore_size``), if any, else :data:`DEFAULT_RATIO` times ``stored`` (at
    least :data:`DEFAULT_FLOOR`).
    """
    if configured is not None:
        limit = parse_size(configured, where)
        return limit, f"the restore size limit, {where}"
    limit = max(DEFAULT_RATIO * stored, DEFAULT_FLOOR)
    return limit, (f"the default restore size limit, {DEFAULT_RATIO} times its {stored:,} "
                   "bytes on disk")


CEILING_HINT = ("if you trust this dump, raise the limit: `--max-size 50G` or "
                '`max_restore_size = "50G"` in [backups]')
