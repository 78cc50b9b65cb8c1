"""Reading a mongodump directory dump (``mongodump --out=DIR``) as the same events as an archive.

Layout: ``DIR/<db>/<collection>.bson`` (documents) and ``<collection>.metadata.json`` (options,
indexes), each optionally ``.gz``; ``DIR/oplog.bson``; optionally ``DIR/prelude.json``. File names
are URL-query-escaped collection names; names too long for a file name are cut to 208
characters plus ``%24`` and a hash, and the real name is read from ``collectionName``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from monarch.archive._source import DEFAULT_CHUNK_SIZE, DEFAULT_READ_SIZE, ByteSource
from monarch.archive.compression import open_decompressed_reader
from monarch.archive.crc import crc64
from monarch.archive.events import CollectionEnd, Documents, Event
from monarch.archive.meta import COLLECTION, VIEW, CollectionMeta
from monarch.errors import ArchiveError

_BSON = (".bson", ".bson.gz")
_METADATA = (".metadata.json", ".metadata.json.gz")
_HASHED_NAME_LENGTH = 238  # mongodump's shortened file names are exactly this long
_OPLOG = "oplog"


@dataclass(frozen=True)
class _Entry:
    meta: CollectionMeta
    bson: Path | None


class DirectoryReader:
    """Read a directory dump; see :class:`~monarch.archive.DumpReader`.

    The directory is listed and every metadata file read on construction, so a missing or
    unreadable file is reported before any data moves. Collections come in (db, name) order,
    the oplog (``db`` "", collection "oplog") last. There is no stored CRC to check: the
    :class:`CollectionEnd` carries the CRC computed while reading. With ``db``, only that
    database is read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        db: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        self._root = Path(path)
        if not self._root.is_dir():
            raise ArchiveError(f"{self._root} is not a directory dump: no such directory")
        self._chunk_size = chunk_size
        self._read_size = read_size
        self._header = _read_prelude(self._root)
        entries: list[_Entry] = []
        for child in sorted(self._root.iterdir()):
            if child.is_dir() and (db is None or child.name == db):
                entries.extend(_scan_database(child.name, child))
        oplog = _single_file(self._root, _OPLOG, _BSON)
        if oplog is not None and db is None:
            entries.append(_Entry(CollectionMeta("", _OPLOG), oplog))
        self._entries = entries
        self._iterated = False

    @property
    def header(self) -> dict[str, Any]:
        """``server_version`` and ``tool_version`` from ``prelude.json`` ("" when absent)."""
        return dict(self._header)

    @property
    def collections(self) -> list[CollectionMeta]:
        """The collections found (only ``db``'s when filtered)."""
        return [entry.meta for entry in self._entries]

    def __iter__(self) -> Iterator[Event]:
        if self._iterated:
            raise ValueError("a dump reader can be iterated only once")
        self._iterated = True
        return self._events()

    def _events(self) -> Iterator[Event]:
        for entry in self._entries:
            meta = entry.meta
            crc = documents = size = 0
            if entry.bson is not None:
                with entry.bson.open("rb") as raw:
                    stream = open_decompressed_reader(
                        raw, "gzip" if entry.bson.name.endswith(".gz") else "none"
                    )
                    source = ByteSource(stream, self._read_size)
                    chunks = source.chunks(
                        self._chunk_size, until_terminator=False, describe=partial(str, entry.bson)
                    )
                    for view, count in chunks:
                        crc = crc64(view, crc)
                        documents += count
                        size += len(view)
                        yield Documents(meta.db, meta.data_collection, view, count)
            yield CollectionEnd(meta.db, meta.data_collection, crc, documents, size)


def _scan_database(db: str, folder: Path) -> list[_Entry]:
    metadata: dict[str, CollectionMeta] = {}
    data: dict[str, Path] = {}
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        kind = _kind(file.name)
        if kind is None:
            continue  # mongorestore skips stray files too
        stem, suffixes = kind
        if suffixes is _METADATA:
            meta = _read_metadata(db, stem, file)
            _put(metadata, meta.collection, meta, file)
        else:
            _put(data, _collection_name(stem, folder), file, file)
    entries: list[_Entry] = []
    for meta in metadata.values():
        bson = data.pop(meta.data_collection, None)
        if bson is None and meta.type != VIEW:
            raise ArchiveError(
                f"the dump has metadata for {meta.namespace!r} but no "
                f"{meta.data_collection}.bson in {folder}: the dump is incomplete",
                hint="copy the whole dump directory, or exclude that collection",
            )
        entries.append(_Entry(meta, bson))
    for name, bson in data.items():
        if name == "system.indexes" and metadata:
            continue  # index specs of pre-3.0 dumps, superseded by the metadata files
        entries.append(_Entry(CollectionMeta(db, name), bson))
    return sorted(entries, key=lambda e: e.meta.collection)


def _kind(name: str) -> tuple[str, tuple[str, str]] | None:
    for suffixes in (_METADATA, _BSON):
        for suffix in suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)], suffixes
    return None


def _put(into: dict[str, Any], name: str, value: Any, file: Path) -> None:
    if name in into:
        raise ArchiveError(
            f"the dump holds two files for collection {name!r} in "
            f"{file.parent} (one is {file.name}); remove one of them"
        )
    into[name] = value


def _is_shortened(stem: str) -> bool:
    return "%24" in stem and len(stem) == _HASHED_NAME_LENGTH


def _collection_name(stem: str, folder: Path) -> str:
    if not _is_shortened(stem):
        return unquote_plus(stem)
    # A shortened name: only the metadata file knows the real one.
    file = _single_file(folder, stem, _METADATA)
    if file is None:
        raise ArchiveError(
            f"{folder / stem}: the file name is shortened and there is no "
            f"metadata file to give the real collection name"
        )
    return _read_metadata(folder.name, stem, file).collection


def _read_metadata(db: str, stem: str, file: Path) -> CollectionMeta:
    text = _read_text(file)
    parsed = CollectionMeta(db, unquote_plus(stem), text).parsed
    kind = parsed.get("type")
    kind = kind if isinstance(kind, str) and kind else COLLECTION
    if not _is_shortened(stem):
        # Like mongorestore, the file name wins: a renamed file restores under its new name.
        return CollectionMeta(db, unquote_plus(stem), text, kind)
    name = parsed.get("collectionName")
    if not isinstance(name, str) or not name:
        raise ArchiveError(
            f"{file}: the file name is shortened and the metadata has no collectionName"
        )
    return CollectionMeta(db, name, text, kind)


def _read_text(file: Path) -> str:
    with file.open("rb") as raw:
        stream = open_decompressed_reader(raw, "gzip" if file.name.endswith(".gz") else "none")
        data = stream.read()
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{file}: not UTF-8 text ({exc})") from None


def _single_file(folder: Path, stem: str, suffixes: tuple[str, str]) -> Path | None:
    found = [folder / (stem + s) for s in suffixes if (folder / (stem + s)).is_file()]
    if len(found) > 1:
        raise ArchiveError(f"the dump holds both {found[0].name} and {found[1].name} in {folder}")
    return found[0] if found else None


def _read_prelude(root: Path) -> dict[str, Any]:
    header: dict[str, Any] = {"server_version": "", "tool_version": ""}
    file = root / "prelude.json"
    if not file.is_file():
        return header
    try:
        value = json.loads(_read_text(file) or "{}")
    except ValueError as exc:
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
