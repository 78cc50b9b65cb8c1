"""Reading the backups of monarch 0.0.x: one database's ``mongodump --out`` files in a zip.

The original tool zipped ``<collection>.bson`` and ``<collection>.metadata.json`` of each
collection at the zip's root (no folder per database, no ``prelude.json``), deflated or stored.
Such a zip reads as the same events as a directory dump: the scanning and reading are
:mod:`monarch.archive.directory`'s, over the zip's members instead of a folder's files. Members
are streamed out of the zip, never extracted to disk.

What protects a restore: zipfile checks a member's CRC-32 when its last byte is read, so a
damaged member raises before its :class:`~monarch.archive.events.CollectionEnd`; documents are
framed as they stream (length, closing NUL, whole documents to the last byte); a member never
yields more than the size the zip's directory declares, and those sizes are checked up front
(against what deflate can reach, and against ``max_size`` when given) so a forged directory
cannot make a restore take more than it announced.

All of zipfile's and zlib's failures become :class:`~monarch.errors.ArchiveError` naming the
zip and member, here and only here (:func:`_translated`).
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bson import decode_all
from bson.codec_options import CodecOptions, DatetimeConversion

from monarch.archive._source import DEFAULT_CHUNK_SIZE, DEFAULT_READ_SIZE, iter_documents
from monarch.archive.directory import EntriesReader, scan_database
from monarch.archive.events import Documents
from monarch.archive.limits import CEILING_HINT, SizeLimitExceeded
from monarch.errors import ArchiveError, MonarchError

MAX_DEFLATE_RATIO = 1100
"""Deflate cannot expand beyond about 1032:1; a member declaring more is lying about its size."""

_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               NotImplementedError, RuntimeError, ValueError, struct.error)
"""What zipfile and zlib raise on a damaged, truncated, encrypted or unsupported zip."""

_DECODE: CodecOptions[dict[str, Any]] = CodecOptions(
    datetime_conversion=DatetimeConversion.DATETIME_AUTO  # any date a server stored is valid
)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn zipfile's and zlib's errors into ArchiveError naming ``what`` (zip and member)."""
    try:
        yield
    except MonarchError:
        raise
    except _ZIP_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        raise ArchiveError(
            f"{what}: the zip is damaged ({reason})",
            hint="the backup cannot be read; restore another one",
        ) from None


class _Member(io.RawIOBase):
    """A member being read, with zipfile's errors translated."""

    def __init__(self, stream: BinaryIO, what: str) -> None:
        self._stream = stream
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        with _translated(self._what):
            return self._stream.read(size)

    def readinto(self, buffer: Any, /) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class _ZipFiles:
    """The files at the root of a zip, as :class:`~monarch.archive.directory.DumpFiles`."""

    def __init__(self, archive: zipfile.ZipFile, what: str) -> None:
        self._zip = archive
        self._what = what
        # Root files only: no folder (nor a nameless member, which a damaged zip may list).
        self._infos = [i for i in archive.infolist() if i.filename and "/" not in i.filename]

    def names(self) -> list[str]:
        return sorted(i.filename for i in self._infos)

    def open(self, name: str) -> BinaryIO:
        what = self.describe(name)
        with _translated(what):
            stream: BinaryIO = self._zip.open(name)  # type: ignore[assignment]
        return _Member(stream, what)  # type: ignore[return-value]

    def describe(self, name: str = "") -> str:
        return f"{self._what}, member {name}" if name else self._what

    def size(self, name: str) -> int:
        """The uncompressed size the zip's directory declares for member ``name``."""
        return self._zip.getinfo(name).file_size

    def declared_size(self) -> int:
        """Uncompressed bytes the zip's directory declares for the root files, all together.

        Raises ArchiveError for a member whose declared size its compressed size cannot reach.
        """
        total = 0
        for info in self._infos:
            stored = info.compress_type == zipfile.ZIP_STORED
            if (stored and info.file_size != info.compress_size) or (
                    info.file_size > max(info.compress_size, 1) * MAX_DEFLATE_RATIO):
                raise ArchiveError(
                    f"{self.describe(info.filename)}: declares {info.file_size:,} bytes from "
                    f"{info.compress_size:,} compressed; the zip's directory is damaged",
                    hint="the backup cannot be read; restore another one",
                )
            total += info.file_size
        return total


class ZipDumpReader(EntriesReader):
    """Read a zip of one database's directory dump; see :class:`~monarch.archive.DumpReader`.

    ``file`` must be seekable (a zip's directory is at its end); it stays the caller's to
    close. Every collection is reported as database ``db``. The zip's directory and every
    metadata member are read on construction, so a zip that is not one, or is cut short,
    fails before any data moves. ``limit`` (bytes, and what that limit is called) refuses up
    front a zip whose members declare more uncompressed bytes than that, and holds the
    reading to it (which matters for ``.gz`` members). ``what`` names the zip in messages.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        db: str,
        what: str = "the zip",
        limit: tuple[int, str] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        self._what = what
        self._chunk_size = chunk_size
        self._read_size = read_size
        self._header = {"server_version": "", "tool_version": ""}  # no prelude.json in these
        with _translated(what):
            self._zip = zipfile.ZipFile(file)
        files = self._files = _ZipFiles(self._zip, what)
        self.declared_size = files.declared_size()
        self._limit = limit
        if limit is not None and self.declared_size > limit[0]:
            raise SizeLimitExceeded(
                f"{what} declares {self.declared_size:,} bytes uncompressed, more than "
                f"{limit[1]} ({limit[0]:,} bytes); nothing was read",
                limit=limit[0], size=self.declared_size, hint=CEILING_HINT,
            )
        self._entries = scan_database(db, files)
        if not self._entries:
            raise ArchiveError(
                f"{what} holds no collections: no <collection>.bson or .metadata.json at the "
                "zip's root",
                hint="a monarch 0.0.x backup is a zip of one database's mongodump files",
            )

    def sizes(self) -> dict[str, int]:
        """Bytes of BSON each collection holds, as the zip declares them (plain members)."""
        return {
            entry.meta.collection: self._files.size(entry.bson)
            for entry in self._entries
            if entry.bson is not None and not entry.bson.endswith(".gz")
        }

    def close(self) -> None:
        """Release the zip (not the file it was given)."""
        self._zip.close()


@dataclass(frozen=True)
class ZipCheck:
    """What :func:`check_zip_dump` read: collections, documents and bytes of BSON."""

    collections: int
    documents: int
    size: int


def check_zip_dump(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    db: str = "legacy",
    what: str | None = None,
    max_size: int | None = None,
) -> ZipCheck:
    """Read a legacy zip wholly and check it: raise :class:`ArchiveError` at the first fault.

    Checked: the zip's structure and every member's CRC-32, the declared sizes, every metadata
    member as Extended JSON (options and indexes well formed), and every ``.bson`` member as a
    sequence of whole, decodable BSON documents ending at its last byte. ``source`` is a path
    or a seekable binary file. Raises only :class:`~monarch.errors.MonarchError` subclasses.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            file: BinaryIO = path.open("rb")
        except OSError as exc:
            raise ArchiveError(f"cannot read {path}: {exc.strerror}") from None
        with file:
            return check_zip_dump(file, db=db, what=what or str(path), max_size=max_size)
    what = what or "the zip"
    limit = None if max_size is None else (max_size, "the size limit given")
    reader = ZipDumpReader(source, db=db, what=what, limit=limit)
    try:
        for meta in reader.collections:
            meta.options  # noqa: B018 - parsing is the check
            meta.indexes  # noqa: B018
        documents = size = 0
        offsets: dict[str, int] = {}
        for event in reader:
            if isinstance(event, Documents):
                start = offsets.get(event.collection, 0)
                _check_decodable(event, f"{what}, member {event.collection}.bson", start)
                offsets[event.collection] = start + len(event.data)
                documents += event.count
                size += len(event.data)
        return ZipCheck(len(reader.collections), documents, size)
    finally:
        reader.close()


def _check_decodable(event: Documents, where: str, start: int) -> None:
    try:
        decode_all(event.data, _DECODE)
        return
    except Exception:  # bson's decoder raises many types on bad input; find the document
        pass
    offset = start
    for document in iter_documents(event.data):
        try:
            decode_all(document, _DECODE)
        except Exception as exc:  # any decoder failure means a bad document
            raise ArchiveError(
                f"{where}: the document at byte {offset} is not valid BSON ({exc})",
                hint="the backup is damaged; restore another one",
            ) from None
        offset += len(document)
    raise ArchiveError(f"{where}: documents from byte {start} are not valid BSON")
