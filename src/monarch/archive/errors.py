"""The archive layer's errors: each is an :class:`~monarch.errors.ArchiveError`.

Messages say what is wrong and where (namespace, file, byte offset in the uncompressed stream),
so a user can tell a truncated upload from a flipped bit from a file that is not a dump at all.
"""

from __future__ import annotations

from monarch.errors import ArchiveError


class NotAnArchive(ArchiveError):
    """The bytes are not a mongodump archive; ``looks_like`` names what they seem to be."""

    def __init__(self, message: str, *, looks_like: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.looks_like = looks_like


class TruncatedArchive(ArchiveError):
    """The stream ended before the archive (or a dump file) was complete."""

    def __init__(self, message: str, *, offset: int, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.offset = offset


class ChecksumMismatch(ArchiveError):
    """A namespace's documents do not match the CRC-64 recorded in its end-of-collection block."""

    def __init__(self, namespace: str, *, expected: int, actual: int, offset: int):
        super().__init__(
            f"CRC mismatch for namespace {namespace!r} (end-of-collection block at byte "
            f"{offset}): the archive records {expected}, its documents give {actual}",
            hint="the archive is corrupt; restore from another copy of the backup",
        )
        self.namespace = namespace
        self.expected = expected
        self.actual = actual
        self.offset = offset
