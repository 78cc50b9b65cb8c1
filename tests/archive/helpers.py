"""Small helpers shared by the archive tests: build archives, read them back, walk them."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bson

from monarch.archive import (
    ArchiveWriter,
    CollectionEnd,
    CollectionMeta,
    Documents,
    Method,
    NamespaceStats,
    open_compressed_writer,
)


def make_archive(
    batches: Iterable[tuple[str, str, bytes]],
    collections: Sequence[CollectionMeta],
    *,
    compression: Method = "none",
    segment_size: int | None = None,
) -> tuple[bytes, list[NamespaceStats]]:
    """Write ``batches`` (db, collection, raw documents) then end every collection."""
    out = io.BytesIO()
    with open_compressed_writer(out, compression) as stream:
        kwargs = {} if segment_size is None else {"segment_size": segment_size}
        writer = ArchiveWriter(stream, **kwargs)
        writer.write_header(collections, "7.0.0", "monarch-tests", max(1, len(collections)))
        for db, coll, raw in batches:
            writer.write_documents(db, coll, raw)
        for meta in collections:
            writer.end_collection(meta.db, meta.data_collection)
        writer.close()
    return out.getvalue(), writer.stats


@dataclass
class Collected:
    """Everything a reader yielded, per namespace, with the order of events kept."""

    data: dict[str, bytearray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    ends: dict[str, CollectionEnd] = field(default_factory=dict)
    order: list[tuple[str, str]] = field(default_factory=list)


def collect(events: Iterable[Documents | CollectionEnd]) -> Collected:
    """Read every event, checking that no namespace has events after its end."""
    got = Collected()
    for event in events:
        ns = event.namespace
        assert ns not in got.ends, f"event for {ns} after its CollectionEnd"
        if isinstance(event, Documents):
            assert event.count > 0
            got.data.setdefault(ns, bytearray()).extend(event.data)
            got.counts[ns] = got.counts.get(ns, 0) + event.count
            got.order.append(("documents", ns))
        else:
            got.ends[ns] = event
            got.order.append(("end", ns))
    return got


@dataclass
class Block:
    header: dict[str, Any]
    documents: list[bytes]


def walk(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]], list[Block]]:
    """An independent, minimal parse of an uncompressed archive: header, metadata, blocks."""
    assert data[:4] == bytes.fromhex("6de29981")
    pos = 4

    def item() -> bytes | None:
        nonlocal pos
        (size,) = struct.unpack_from("<i", data, pos)
        if size == -1:
            pos += 4
            return None
        raw = data[pos : pos + size]
        pos += size
        return raw

    header_raw = item()
    assert header_raw is not None
    metas = []
    while (raw := item()) is not None:
        metas.append(bson.decode(raw))
    blocks = []
    while pos < len(data):
        head = item()
        assert head is not None
        block = Block(bson.decode(head), [])
        while (raw := item()) is not None:
            block.documents.append(raw)
        blocks.append(block)
    return bson.decode(header_raw), metas, blocks
