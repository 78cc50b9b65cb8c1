"""Reading a mongodump archive as a stream of raw-document events, checking it as it goes.

Every structural rule mongorestore relies on is enforced, and the stream is refused (with
:class:`~monarch.errors.ArchiveError`) rather than silently cut short: a restore must never
take a truncated or corrupted archive for a complete one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import bson
from bson.errors import BSONError

from monarch.archive._source import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_SIZE,
    MAX_DOCUMENT_SIZE,
    MIN_DOCUMENT_SIZE,
    TERMINATOR,
    ByteSource,
)
from monarch.archive.compression import Method, open_decompressed_reader
from monarch.archive.crc import crc64, to_unsigned
from monarch.archive.errors import ChecksumMismatch, NotAnArchive, TruncatedArchive
from monarch.archive.events import CollectionEnd, Documents, Event
from monarch.archive.format import MAGIC_BYTES
from monarch.archive.meta import COLLECTION, CollectionMeta
from monarch.errors import ArchiveError
from monarch.io import Readable


@dataclass
class _Progress:
    crc: int = 0
    documents: int = 0
    size: int = 0


class ArchiveReader:
    """Read an (uncompressed) archive from ``stream``; see :class:`~monarch.archive.DumpReader`.

    The header and collection metadata are read on construction. Iterating yields
    :class:`Documents` runs of up to about ``chunk_size`` bytes and, after each namespace's
    end-of-collection block has been checked against its CRC, a :class:`CollectionEnd`.
    With ``db``, only that database's collections and events are reported, though the whole
    archive is still read and checked.
    """

    def __init__(
        self,
        stream: Readable,
        *,
        db: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        self._src = ByteSource(stream, read_size)
        self._db = db
        self._chunk_size = chunk_size
        self._iterated = False
        self._header, self._all = self._read_prelude()

    @property
    def header(self) -> dict[str, Any]:
        """The archive header: ``concurrent_collections``, ``version``, ``server_version``,
        ``tool_version``."""
        return dict(self._header)

    @property
    def collections(self) -> list[CollectionMeta]:
        """The collections the archive holds (only ``db``'s when filtered)."""
        return [m for m in self._all if self._db is None or m.db == self._db]

    def __iter__(self) -> Iterator[Event]:
        if self._iterated:
            raise ValueError("an archive stream can be iterated only once")
        self._iterated = True
        return self._events()

    def _read_prelude(self) -> tuple[dict[str, Any], list[CollectionMeta]]:
        src = self._src
        if not src.ensure(4):
            size = len(src.rest())
            raise NotAnArchive(
                f"not a mongodump archive: the stream has only {size} byte(s)"
                if size
                else "not a mongodump archive: the stream is empty"
            )
        magic = src.take(4)
        if magic != MAGIC_BYTES:
            raise _not_an_archive(magic)
        start = src.offset
        raw = src.document_or_terminator("the archive header")
        if raw is None:
            raise ArchiveError(
                f"corrupt: a terminator at byte {start} instead of the archive header"
            )
        header = _decode(raw, "the archive header", start)
        metas: list[CollectionMeta] = []
        seen: set[tuple[str, str]] = set()
        while True:
            start = src.offset
            raw = src.document_or_terminator("collection metadata")
            if raw is None:
                break
            meta = _collection_meta(_decode(raw, "collection metadata", start), start)
            key = (meta.db, meta.data_collection)
            if key in seen:
                raise ArchiveError(
                    f"corrupt: namespace {meta.namespace!r} has two collection "
                    f"metadata documents (the second at byte {start})"
                )
            seen.add(key)
            metas.append(meta)
        return header, metas

    def _events(self) -> Iterator[Event]:
        src = self._src
        expected = {(m.db, m.data_collection) for m in self._all}
        progress: dict[tuple[str, str], _Progress] = {}
        ended: set[tuple[str, str]] = set()
        while not src.at_end():
            start = src.offset
            raw = src.document_or_terminator("a namespace header")
            if raw is None:
                raise ArchiveError(
                    f"corrupt: a terminator at byte {start} where a namespace header should be"
                )
            db, collection, eof, stored_crc = _namespace_header(raw, start)
            key = (db, collection)
            ns = f"{db}.{collection}"
            if key not in expected:
                raise ArchiveError(
                    f"corrupt: the block at byte {start} is for namespace {ns!r}, "
                    f"which has no collection metadata in the archive header"
                )
            if key in ended:
                raise ArchiveError(
                    f"corrupt: the block at byte {start} for namespace {ns!r} "
                    f"comes after that namespace's end-of-collection block"
                )
            done = progress.setdefault(key, _Progress())
            selected = self._db is None or db == self._db
            if eof:
                self._end_block(ns, start)
                if to_unsigned(stored_crc) != done.crc:
                    raise ChecksumMismatch(
                        ns, expected=to_unsigned(stored_crc), actual=done.crc, offset=start
                    )
                ended.add(key)
                if selected:
                    yield CollectionEnd(db, collection, done.crc, done.documents, done.size)
                continue
            place = partial(_segment_place, ns, start)
            for view, count in src.chunks(self._chunk_size, until_terminator=True, describe=place):
                done.crc = crc64(view, done.crc)
                done.documents += count
                done.size += len(view)
                if selected:
                    yield Documents(db, collection, view, count)
        unended = sorted(f"{db}.{coll}" for db, coll in expected - ended)
        if unended:
            raise TruncatedArchive(
                f"truncated: the archive ends at byte {src.offset} before the end of "
                f"{len(unended)} namespace(s): "
                + ", ".join(unended[:5])
                + (" ..." if len(unended) > 5 else ""),
                offset=src.offset,
                hint="the dump was probably interrupted; use a complete backup",
            )

    def _end_block(self, ns: str, start: int) -> None:
        src = self._src
        if not src.ensure(4):
            raise TruncatedArchive(
                f"truncated: the stream ends inside the end-of-collection "
                f"block of {ns!r} at byte {start}",
                offset=start,
            )
        if src.peek_int32() != TERMINATOR:
            raise ArchiveError(
                f"corrupt: the end-of-collection block of {ns!r} at byte {start} "
                f"is followed by data at byte {src.offset}, not a terminator"
            )
        src.take(4)


def _segment_place(ns: str, start: int) -> str:
    return f"namespace {ns!r} (block starting at byte {start})"


def _decode(raw: bytes, what: str, offset: int) -> dict[str, Any]:
    try:
        return bson.decode(raw)
    except (BSONError, ValueError, TypeError) as exc:
        raise ArchiveError(f"corrupt: {what} at byte {offset} is not valid BSON: {exc}") from None


def _collection_meta(doc: dict[str, Any], offset: int) -> CollectionMeta:
    db, collection = doc.get("db"), doc.get("collection")
    metadata, kind = doc.get("metadata", ""), doc.get("type") or ""
    if not isinstance(db, str) or not isinstance(collection, str) or not collection:
        raise ArchiveError(
            f"corrupt: collection metadata at byte {offset} lacks a db or collection name"
        )
    if not isinstance(metadata, str) or not isinstance(kind, str):
        raise ArchiveError(
            f"corrupt: collection metadata of {db}.{collection!s} at byte "
            f"{offset} has a non-string metadata or type"
        )
    meta = CollectionMeta(db, collection, metadata, kind or COLLECTION)
    try:
        parsed = meta.parsed  # refuse unreadable metadata now, not halfway through a restore
    except ArchiveError as exc:
        raise ArchiveError(f"corrupt: collection metadata at byte {offset}: {exc}") from None
    if not kind and isinstance(parsed.get("type"), str) and parsed["type"]:
        meta = CollectionMeta(db, collection, metadata, parsed["type"])
    return meta


def _namespace_header(raw: bytes, offset: int) -> tuple[str, str, bool, int]:
    doc = _decode(raw, "a namespace header", offset)
    db, collection = doc.get("db"), doc.get("collection")
    eof, crc = doc.get("EOF", False), doc.get("CRC", 0)
    if not isinstance(db, str) or not isinstance(collection, str) or not collection:
        raise ArchiveError(
            f"corrupt: the namespace header at byte {offset} lacks a db or collection name"
        )
    if not isinstance(eof, bool) or not isinstance(crc, int) or isinstance(crc, bool):
        raise ArchiveError(
            f"corrupt: the namespace header of {db}.{collection} at byte "
            f"{offset} has a malformed EOF or CRC field"
        )
    return db, collection, eof, int(crc)


def _not_an_archive(head: bytes) -> NotAnArchive:
    looks_like: str | None = None
    hint: str | None = None
    if head[:2] == b"\x1f\x8b":
        looks_like = "gzip"
        hint = "read it with gzip decompression (it is what mongodump --gzip writes)"
    elif head == b"\x28\xb5\x2f\xfd":
        looks_like = "zstd"
        hint = "read it with zstd decompression"
    elif MIN_DOCUMENT_SIZE <= int.from_bytes(head, "little", signed=True) <= MAX_DOCUMENT_SIZE:
        looks_like = "bson"
        hint = "a .bson file is one collection of a directory dump: read the whole directory"
    what = {
        "gzip": "; it looks gzip-compressed",
        "zstd": "; it looks zstd-compressed",
        "bson": "; it looks like a plain BSON file",
    }.get(looks_like or "", "")
    return NotAnArchive(
        f"not a mongodump archive: it starts with {head.hex(' ')} instead of the archive magic "
        f"{MAGIC_BYTES.hex(' ')}{what}",
        looks_like=looks_like,
        hint=hint,
    )


def open_archive(
    raw_in: Readable,
    compression: Method | None = None,
    *,
    db: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ArchiveReader:
    """Read an archive from ``raw_in``, decompressing it first.

    With ``compression`` None, gzip and zstd are recognised by their magic bytes.
    """
    stream = open_decompressed_reader(raw_in, compression)
    return ArchiveReader(stream, db=db, chunk_size=chunk_size)
