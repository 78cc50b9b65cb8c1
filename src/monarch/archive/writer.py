"""Writing a mongodump-compatible archive from raw BSON batches.

The writer never decodes a document: it walks length prefixes to count documents and to cut
segments on document boundaries, and feeds the bytes to the CRC and the output as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monarch.archive._source import BadDocument, scan_documents, unpack_int32
from monarch.archive.crc import crc64, to_signed
from monarch.archive.format import (
    MAGIC_BYTES,
    MAX_SEGMENT_SIZE,
    TERMINATOR_BYTES,
    encode_collection_metadata,
    encode_header,
    encode_namespace_header,
)
from monarch.archive.meta import CollectionMeta
from monarch.errors import ArchiveError
from monarch.io import Buffer, Writable


@dataclass
class NamespaceStats:
    """What was written for one namespace: for a backup's manifest.

    ``crc`` is the unsigned CRC-64/XZ of the documents (the archive stores its signed form).
    """

    db: str
    collection: str
    documents: int = 0
    size: int = 0
    crc: int = 0
    ended: bool = False

    @property
    def namespace(self) -> str:
        """``db.collection``."""
        return f"{self.db}.{self.collection}"


class ArchiveWriter:
    """Write an archive to ``out``: header, then documents, then each namespace's end.

    Documents of several namespaces may be interleaved; a namespace header is written each time
    the namespace changes, and a segment is cut before it would pass ``segment_size`` (a larger
    document gets a segment of its own). ``out`` is never closed by the writer.

    Usage::

        writer = ArchiveWriter(out)
        writer.write_header(collections, server_version="7.0.2", tool_version="monarch 1.0")
        writer.write_documents("shop", "orders", raw_batch)
        writer.end_collection("shop", "orders")
        writer.close()
    """

    def __init__(self, out: Writable, *, segment_size: int = MAX_SEGMENT_SIZE) -> None:
        if segment_size < 1:
            raise ValueError("segment_size must be positive")
        self._out = out
        self._segment_size = segment_size
        self._stats: dict[tuple[str, str], NamespaceStats] = {}
        self._header_written = False
        self._closed = False
        self._current: tuple[str, str] | None = None  # namespace of the open segment
        self._segment_used = 0
        self._concurrent = 1
        self._started: set[tuple[str, str]] = set()  # has had a block and is not ended

    @property
    def stats(self) -> list[NamespaceStats]:
        """Per data namespace, in header order: documents, bytes, CRC, whether ended."""
        return list(self._stats.values())

    def write_header(
        self,
        collections: Sequence[CollectionMeta],
        server_version: str,
        tool_version: str,
        concurrent_collections: int = 1,
    ) -> None:
        """Write the magic, the header and one metadata document per collection.

        Every namespace written later must be the :attr:`CollectionMeta.data_collection` of one
        of ``collections``, and each must be ended, views included.

        ``concurrent_collections`` is how many namespaces may be in progress at once (started
        and not yet ended). mongorestore restores that many collections in parallel, one worker
        staying with each until its end block, so an archive that interleaves more would make
        it deadlock; the writer refuses to write one (``ValueError``).
        """
        if self._header_written:
            raise ValueError("the archive header was already written")
        stats: dict[tuple[str, str], NamespaceStats] = {}
        for meta in collections:
            key = (meta.db, meta.data_collection)
            if key in stats:
                raise ValueError(f"namespace {meta.db}.{meta.data_collection} is listed twice")
            stats[key] = NamespaceStats(*key)
        parts = [MAGIC_BYTES, encode_header(server_version, tool_version, concurrent_collections)]
        parts.extend(encode_collection_metadata(meta) for meta in collections)
        parts.append(TERMINATOR_BYTES)
        self._out.write(b"".join(parts))
        self._stats = stats
        self._concurrent = concurrent_collections
        self._header_written = True

    def write_documents(self, db: str, collection: str, raw: Buffer,
                        count: int | None = None) -> None:
        """Append ``raw`` (whole BSON documents, concatenated) to namespace ``db.collection``.

        Raises :class:`~monarch.errors.ArchiveError` if ``raw`` is not whole documents; nothing
        of ``raw`` is written past the first bad document. A caller that knows ``raw`` to be
        ``count`` whole documents (cut out of a server's reply by the driver) may say so: a
        batch that fits in a segment is then written without walking its documents.
        """
        stats = self._open_namespace(db, collection)
        view = memoryview(raw).cast("B")
        pos, end = 0, len(view)
        out, cap, key = self._out, self._segment_size, (db, collection)
        if count is not None and 0 < end <= cap:
            if self._current != key or self._segment_used + end > cap:
                self._start_segment(db, collection)
            out.write(view)
            stats.crc = crc64(view, stats.crc)
            stats.documents += count
            stats.size += end
            self._segment_used += end
            return
        while pos < end:
            if end - pos < 4:
                raise _bad_input(stats, pos, "a document is cut short")
            size = unpack_int32(view, pos)[0]
            if self._current != key or (self._segment_used and self._segment_used + size > cap):
                self._start_segment(db, collection)
            try:
                after, count = scan_documents(view, pos, end, pos + cap - self._segment_used)
            except BadDocument as exc:
                raise _bad_input(stats, exc.pos, exc.reason) from None
            if not count:
                raise _bad_input(stats, pos, "a document is cut short")
            chunk = view[pos:after]
            out.write(chunk)
            stats.crc = crc64(chunk, stats.crc)
            stats.documents += count
            stats.size += after - pos
            self._segment_used += after - pos
            pos = after

    def end_collection(self, db: str, collection: str) -> NamespaceStats:
        """Write the namespace's end-of-collection block (with its CRC) and return its stats."""
        stats = self._open_namespace(db, collection)
        self._check_concurrency((db, collection))
        self._finish_segment()
        self._out.write(
            encode_namespace_header(db, collection, eof=True, crc=to_signed(stats.crc))
            + TERMINATOR_BYTES
        )
        stats.ended = True
        self._started.discard((db, collection))
        return stats

    def close(self) -> None:
        """Check that the archive is complete. Does not close ``out``.

        Raises :class:`~monarch.errors.ArchiveError` naming any namespace not ended: such an
        archive would be refused by any reader.
        """
        if self._closed:
            return
        if not self._header_written:
            raise ArchiveError("the archive is incomplete: no header was written")
        unended = [s.namespace for s in self._stats.values() if not s.ended]
        if unended:
            raise ArchiveError(
                f"the archive is incomplete: {len(unended)} namespace(s) not ended: "
                + ", ".join(unended[:5])
                + (" ..." if len(unended) > 5 else "")
            )
        self._closed = True

    def _open_namespace(self, db: str, collection: str) -> NamespaceStats:
        if not self._header_written:
            raise ValueError("write_header() must come first")
        if self._closed:
            raise ValueError("the archive writer is closed")
        stats = self._stats.get((db, collection))
        if stats is None:
            raise ValueError(
                f"namespace {db}.{collection} is not in the archive header (a time-series "
                f"collection's documents go to its system.buckets collection)"
            )
        if stats.ended:
            raise ValueError(f"namespace {db}.{collection} was already ended")
        return stats

    def _check_concurrency(self, key: tuple[str, str]) -> None:
        if key not in self._started and len(self._started) >= self._concurrent:
            raise ValueError(
                f"starting namespace {key[0]}.{key[1]} would put {len(self._started) + 1} "
                f"namespaces in progress at once, more than concurrent_collections="
                f"{self._concurrent}; end one first or declare more in write_header()"
            )

    def _start_segment(self, db: str, collection: str) -> None:
        self._check_concurrency((db, collection))
        self._started.add((db, collection))
        self._finish_segment()
        self._out.write(encode_namespace_header(db, collection, eof=False, crc=0))
        self._current = (db, collection)

    def _finish_segment(self) -> None:
        if self._current is not None:
            self._out.write(TERMINATOR_BYTES)
            self._current = None
        self._segment_used = 0


def _bad_input(stats: NamespaceStats, pos: int, reason: str) -> ArchiveError:
    return ArchiveError(
        f"invalid BSON given for namespace {stats.namespace!r} at byte {pos} of the batch: {reason}"
    )
