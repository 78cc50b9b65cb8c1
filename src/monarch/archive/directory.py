"""Reading a mongodump directory dump (``mongodump --out=DIR``) as the same events as an archive.

Layout: ``DIR/<db>/<collection>.bson`` (documents) and ``<collection>.metadata.json`` (options,
indexes), each optionally ``.gz``; ``DIR/oplog.bson``; optionally ``DIR/prelude.json``. File names
are URL-query-escaped collection names; names too long for a file name are cut to 208
characters plus ``%24`` and a hash, and the real name is read from ``collectionName``.

One database's files are reached through :class:`DumpFiles`, so the same scanning and reading
serve a folder on disk and other containers of the same files (the zips of monarch 0.0.x, see
:mod:`monarch.archive.zipdump`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote_plus

import bson
from bson.errors import BSONError

from monarch.archive._source import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_SIZE,
    MAX_DOCUMENT_SIZE,
    ByteSource,
    iter_documents,
)
from monarch.archive.compression import open_decompressed_reader
from monarch.archive.crc import crc64
from monarch.archive.events import CollectionEnd, Documents, Event
from monarch.archive.limits import CEILING_HINT, LimitedReader
from monarch.archive.meta import COLLECTION, VIEW, CollectionMeta, invalid_collection_name
from monarch.errors import ArchiveError
from monarch.io import Readable

_BSON = (".bson", ".bson.gz")
_METADATA = (".metadata.json", ".metadata.json.gz")
_HASHED_NAME_LENGTH = 238  # mongodump's shortened file names are exactly this long
_OPLOG = "oplog"


class DumpFiles(Protocol):
    """One database's files of a directory-shaped dump: a folder, or the root of a zip."""

    def names(self) -> list[str]:
        """The file names, sorted."""
        ...

    def open(self, name: str) -> BinaryIO:
        """Open file ``name`` for reading; failures raise a MonarchError naming the file."""
        ...

    def describe(self, name: str = "") -> str:
        """Where the files are (or file ``name`` is), for messages."""
        ...


class FolderFiles:
    """The files of a folder on disk, as :class:`DumpFiles`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_file())

    def open(self, name: str) -> BinaryIO:
        try:
            return (self.folder / name).open("rb")
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.folder / name}: {exc.strerror}") from None

    def describe(self, name: str = "") -> str:
        return str(self.folder / name) if name else str(self.folder)


@dataclass(frozen=True)
class DumpEntry:
    """A collection of a dump: its metadata, and the file holding its documents (if any)."""

    meta: CollectionMeta
    bson: str | None
    files: DumpFiles


class EntriesReader:
    """A :class:`~monarch.archive.DumpReader` over scanned :class:`DumpEntry` items.

    A subclass sets ``_entries``, ``_header``, ``_chunk_size`` and ``_read_size`` on
    construction, and ``_limit`` (bytes, and what that limit is called) to stop reading at the
    first decompressed byte beyond it, all ``.bson`` files together.
    """

    _entries: list[DumpEntry]
    _header: dict[str, Any]
    _chunk_size: int = DEFAULT_CHUNK_SIZE
    _read_size: int = DEFAULT_READ_SIZE
    _iterated: bool = False
    _limit: tuple[int, str] | None = None

    @property
    def header(self) -> dict[str, Any]:
        """``server_version`` and ``tool_version`` ("" when unknown)."""
        return dict(self._header)

    @property
    def collections(self) -> list[CollectionMeta]:
        """The collections found (only ``db``'s when filtered), in name order."""
        return [entry.meta for entry in self._entries]

    def __iter__(self) -> Iterator[Event]:
        if self._iterated:
            raise ValueError("a dump reader can be iterated only once")
        self._iterated = True
        return read_entries(self._entries, self._chunk_size, self._read_size, self._limit)

    def find_damage(self) -> ArchiveError | None:
        """Read every file again, decoding each document (a directory dump has no checksum):
        the first one that is not valid BSON, as an error naming its file and byte offset.

        For explaining a failure after the fact (a server that dropped the connection over a
        damaged document): decoding costs more than the restore's pass-through reading.
        """
        try:
            for _ in read_entries(self._entries, self._chunk_size, self._read_size,
                                  self._limit, validate=True):
                pass
        except ArchiveError as exc:
            return exc
        return None


class DirectoryReader(EntriesReader):
    """Read a directory dump; see :class:`~monarch.archive.DumpReader`.

    The directory is listed and every metadata file read on construction, so a missing or
    unreadable file is reported before any data moves. ``header`` comes from ``prelude.json``.
    Collections come in (db, name) order,
    the oplog (``db`` "", collection "oplog") last. There is no stored CRC to check: the
    :class:`CollectionEnd` carries the CRC computed while reading. With ``db``, only that
    database is read. With ``limit`` (bytes, and what that limit is called), reading stops at
    the first decompressed byte beyond it, all ``.bson`` files together
    (:class:`~monarch.archive.limits.SizeLimitExceeded`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        db: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        read_size: int = DEFAULT_READ_SIZE,
        limit: tuple[int, str] | None = None,
    ) -> None:
        self._root = Path(path)
        self._limit = limit
        if not self._root.is_dir():
            raise ArchiveError(f"{self._root} is not a directory dump: no such directory")
        self._chunk_size = chunk_size
        self._read_size = read_size
        root = FolderFiles(self._root)
        self._header = _read_prelude(root)
        entries: list[DumpEntry] = []
        for child in sorted(self._root.iterdir()):
            if child.is_dir() and (db is None or child.name == db):
                entries.extend(scan_database(child.name, FolderFiles(child)))
        oplog = _single_file(root, _OPLOG, _BSON)
        if oplog is not None and db is None:
            entries.append(DumpEntry(CollectionMeta("", _OPLOG), oplog, root))
        self._entries = entries


def read_entries(
    entries: list[DumpEntry], chunk_size: int = DEFAULT_CHUNK_SIZE,
    read_size: int = DEFAULT_READ_SIZE, limit: tuple[int, str] | None = None,
    *, validate: bool = False,
) -> Iterator[Event]:
    """The events of a directory-shaped dump's collections, read one file after another.

    With ``limit`` (bytes, and what that limit is called), reading stops at the first
    decompressed byte beyond it, all files together
    (:class:`~monarch.archive.limits.SizeLimitExceeded`). With ``validate``, every document is
    decoded, and one that is not valid BSON raises ArchiveError naming its file and offset.
    """
    read = 0
    for entry in entries:
        meta = entry.meta
        crc = documents = size = 0
        if entry.bson is not None:
            with entry.files.open(entry.bson) as raw:
                stream: Readable = open_decompressed_reader(
                    raw, "gzip" if entry.bson.endswith(".gz") else "none"
                )
                if limit is not None:
                    stream = LimitedReader(
                        stream, limit[0], why=limit[1], hint=CEILING_HINT, already=read,
                        what=f"the dump {entry.files.describe()}, decompressed (reading "
                             f"{entry.files.describe(entry.bson)}),")
                source = ByteSource(stream, read_size)
                chunks = source.chunks(
                    chunk_size, until_terminator=False,
                    describe=partial(entry.files.describe, entry.bson),
                )
                for view, count in chunks:
                    if validate:
                        _validate(view, size, entry.files.describe(entry.bson))
                    crc = crc64(view, crc)
                    documents += count
                    size += len(view)
                    yield Documents(meta.db, meta.data_collection, view, count)
                read += size
        yield CollectionEnd(meta.db, meta.data_collection, crc, documents, size)


def _validate(view: memoryview, offset: int, file: str) -> None:
    """Decode the documents of ``view`` (starting at byte ``offset`` of ``file``)."""
    try:
        bson.decode_all(view)
    except (BSONError, ValueError, OverflowError):
        pass
    else:
        return
    for document, start in _documents_at(view):
        try:
            bson.decode(document)
        except (BSONError, ValueError, OverflowError) as exc:
            raise ArchiveError(
                f"{file} is damaged: the document at byte {offset + start:,} is not valid BSON "
                f"({exc}); nothing was restored",
                hint="the dump file is damaged; take the dump again or use another copy",
            ) from None


def _documents_at(view: memoryview) -> Iterator[tuple[memoryview, int]]:
    start = 0
    for document in iter_documents(view):
        yield document, start
        start += len(document)


def scan_database(db: str, files: DumpFiles) -> list[DumpEntry]:
    """Database ``db``'s collections in ``files``, in name order; every metadata file is read.

    Stray files are skipped (as mongorestore does); metadata without its ``.bson`` (other than
    a view's) and two files for one collection are errors.
    """
    metadata: dict[str, CollectionMeta] = {}
    data: dict[str, str] = {}
    for file in files.names():
        kind = _kind(file)
        if kind is None:
            continue  # mongorestore skips stray files too
        stem, suffixes = kind
        if suffixes is _METADATA:
            meta = _read_metadata(db, stem, files, file)
            _put(metadata, meta.collection, meta, files, file)
        else:
            _put(data, _collection_name(db, stem, files), file, files, file)
    entries: list[DumpEntry] = []
    for meta in metadata.values():
        bson = data.pop(meta.data_collection, None)
        if bson is None and meta.type != VIEW:
            raise ArchiveError(
                f"the dump has metadata for {meta.namespace!r} but no "
                f"{meta.data_collection}.bson in {files.describe()}: the dump is incomplete",
                hint="copy the whole dump directory, or exclude that collection",
            )
        entries.append(DumpEntry(meta, bson, files))
    for name, bson in data.items():
        if name == "system.indexes" and metadata:
            continue  # index specs of pre-3.0 dumps, superseded by the metadata files
        entries.append(DumpEntry(CollectionMeta(db, name), bson, files))
    return sorted(entries, key=lambda e: e.meta.collection)


def _kind(name: str) -> tuple[str, tuple[str, str]] | None:
    for suffixes in (_METADATA, _BSON):
        for suffix in suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)], suffixes
    return None


def _put(into: dict[str, Any], name: str, value: Any, files: DumpFiles, file: str) -> None:
    reason = invalid_collection_name(name) if name != _OPLOG else None
    if reason is not None:
        # Refused while scanning, before anything is touched: the server would refuse it
        # mid-restore, and a name like "../x" must never be taken for a path.
        raise ArchiveError(
            f"{files.describe(file)}: {name!r} is not a valid collection name ({reason}); "
            "nothing was touched",
            hint="rename or remove that file (mongodump names files after their collections, "
                 "URL-escaped), or dump the collection again under a valid name",
        )
    if name in into:
        raise ArchiveError(
            f"the dump holds two files for collection {name!r} in "
            f"{files.describe()} (one is {file}); remove one of them"
        )
    into[name] = value


def _is_shortened(stem: str) -> bool:
    return "%24" in stem and len(stem) == _HASHED_NAME_LENGTH


def _collection_name(db: str, stem: str, files: DumpFiles) -> str:
    if not _is_shortened(stem):
        return unquote_plus(stem)
    # A shortened name: only the metadata file knows the real one.
    file = _single_file(files, stem, _METADATA)
    if file is None:
        raise ArchiveError(
            f"{files.describe(stem)}: the file name is shortened and there is no "
            f"metadata file to give the real collection name"
        )
    return _read_metadata(db, stem, files, file).collection


def _read_metadata(db: str, stem: str, files: DumpFiles, file: str) -> CollectionMeta:
    text = _read_text(files, file)
    parsed = CollectionMeta(db, unquote_plus(stem), text).parsed
    kind = parsed.get("type")
    kind = kind if isinstance(kind, str) and kind else COLLECTION
    if not _is_shortened(stem):
        # Like mongorestore, the file name wins: a renamed file restores under its new name.
        return CollectionMeta(db, unquote_plus(stem), text, kind)
    name = parsed.get("collectionName")
    if not isinstance(name, str) or not name:
        raise ArchiveError(
            f"{files.describe(file)}: the file name is shortened and the metadata has no "
            "collectionName"
        )
    return CollectionMeta(db, name, text, kind)


def _read_text(files: DumpFiles, file: str) -> str:
    with files.open(file) as raw:
        stream = LimitedReader(
            open_decompressed_reader(raw, "gzip" if file.endswith(".gz") else "none"),
            MAX_DOCUMENT_SIZE, what=files.describe(file),
            why="the largest metadata file monarch reads")
        data = stream.read()
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{files.describe(file)}: not UTF-8 text ({exc})") from None


def _single_file(files: DumpFiles, stem: str, suffixes: tuple[str, str]) -> str | None:
    names = set(files.names())
    found = [stem + s for s in suffixes if stem + s in names]
    if len(found) > 1:
        raise ArchiveError(f"the dump holds both {found[0]} and {found[1]} in "
                           f"{files.describe()}")
    return found[0] if found else None


def _read_prelude(root: FolderFiles) -> dict[str, Any]:
    header: dict[str, Any] = {"server_version": "", "tool_version": ""}
    file = root.folder / "prelude.json"
    if not file.is_file():
        return header
    try:
        value = json.loads(_read_text(root, file.name) or "{}")
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ArchiveError(f"{file}: not a JSON object")
    # Accept both spellings, ``server_version`` and ``ServerVersion``.
    folded = {key.replace("_", "").lower(): v for key, v in value.items()}
    for key in ("server_version", "tool_version"):
        found = folded.get(key.replace("_", ""))
        if isinstance(found, str):
            header[key] = found
    return header
