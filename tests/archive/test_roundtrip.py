"""Documents written to an archive come back byte for byte, whatever the layout."""

from __future__ import annotations

import io
import itertools
from typing import Any

import bson
import pytest
from bson import Binary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monarch.archive import (
    MAX_DOCUMENT_SIZE,
    ArchiveReader,
    CollectionMeta,
    Method,
    crc64,
    open_archive,
)
from tests.archive.helpers import collect, make_archive, walk
from tests.archive.strategies import documents

NAMESPACES = [("shop", "orders"), ("shop", "users"), ("", "oplog"), ("other", "a.b$c")]


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    """Namespaces with documents, written in interleaved batches of random sizes."""
    count = draw(st.integers(1, len(NAMESPACES)))
    chosen = NAMESPACES[:count]
    docs = {ns: draw(st.lists(documents, max_size=8)) for ns in chosen}
    # A schedule of (namespace, batch size) steps that consumes every document.
    remaining = {ns: list(d) for ns, d in docs.items()}
    batches = []
    while any(remaining.values()):
        ns = draw(st.sampled_from([n for n, d in remaining.items() if d]))
        size = draw(st.integers(1, len(remaining[ns])))
        batch, remaining[ns] = remaining[ns][:size], remaining[ns][size:]
        batches.append((*ns, b"".join(batch)))
    return {
        "collections": [CollectionMeta.build(db, coll) for db, coll in chosen],
        "docs": docs,
        "batches": batches,
        "segment_size": draw(st.sampled_from([1, 50, 300, 16 * 1024 * 1024])),
        "chunk_size": draw(st.sampled_from([1, 100, 4 * 1024 * 1024])),
        "read_size": draw(st.sampled_from([3, 64, 4096, 4 * 1024 * 1024])),
        "compression": draw(st.sampled_from(["none", "gzip", "zstd"])),
    }


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_documents_round_trip_byte_for_byte(layout: dict[str, Any]) -> None:
    data, stats = make_archive(
        layout["batches"],
        layout["collections"],
        compression=layout["compression"],
        segment_size=layout["segment_size"],
    )
    reader = open_archive(io.BytesIO(data), chunk_size=layout["chunk_size"])
    assert reader.collections == layout["collections"]
    assert reader.header["server_version"] == "7.0.0"
    got = collect(reader)
    for (db, coll), docs in layout["docs"].items():
        ns = f"{db}.{coll}"
        expected = b"".join(docs)
        assert bytes(got.data.get(ns, b"")) == expected
        end = got.ends[ns]
        assert (end.documents, end.size, end.crc) == (len(docs), len(expected), crc64(expected))
        written = next(s for s in stats if s.namespace == ns)
        assert (written.documents, written.size, written.crc) == (end.documents, end.size, end.crc)
    assert set(got.ends) == {m.namespace for m in layout["collections"]}


@settings(deadline=None)
@given(layouts())
def test_reading_with_small_buffers_gives_the_same_events(layout: dict[str, Any]) -> None:
    data, _ = make_archive(
        layout["batches"], layout["collections"], segment_size=layout["segment_size"]
    )
    small = collect(ArchiveReader(io.BytesIO(data), read_size=layout["read_size"], chunk_size=1))
    large = collect(ArchiveReader(io.BytesIO(data)))
    assert small.data == large.data
    assert small.ends == large.ends


@settings(deadline=None)
@given(layouts())
def test_segments_switch_namespace_only_with_a_header_and_stay_under_the_cap(
    layout: dict[str, Any],
) -> None:
    cap = layout["segment_size"]
    data, _ = make_archive(layout["batches"], layout["collections"], segment_size=cap)
    _, metas, blocks = walk(data)
    assert [(m["db"], m["collection"]) for m in metas] == list(layout["docs"])
    for block in blocks:
        if block.header["EOF"]:
            assert block.documents == []
        else:
            assert block.documents, "a data segment holds at least one document"
            assert block.header["CRC"] == 0
            size = sum(map(len, block.documents))
            assert size <= cap or len(block.documents) == 1
    # Consecutive segments of one namespace appear only when the cap forced a cut.
    for before, after in itertools.pairwise(blocks):
        same = (before.header["db"], before.header["collection"]) == (
            after.header["db"],
            after.header["collection"],
        )
        if same and not before.header["EOF"] and not after.header["EOF"]:
            used = sum(map(len, before.documents))
            assert used + len(after.documents[0]) > cap


def test_empty_collections_and_views_have_only_an_end_block() -> None:
    collections = [
        CollectionMeta.build("db", "empty"),
        CollectionMeta.build("db", "v", type="view", options={"viewOn": "x", "pipeline": []}),
    ]
    data, _ = make_archive([], collections)
    _, _, blocks = walk(data)
    assert [(b.header["collection"], b.header["EOF"], b.header["CRC"]) for b in blocks] == [
        ("empty", True, 0),
        ("v", True, 0),
    ]
    got = collect(ArchiveReader(io.BytesIO(data)))
    assert got.data == {}
    assert [e.documents for e in got.ends.values()] == [0, 0]


def test_time_series_documents_go_to_the_buckets_namespace() -> None:
    meta = CollectionMeta.build(
        "db", "ts", type="timeseries", options={"timeseries": {"timeField": "t"}}
    )
    assert meta.data_collection == "system.buckets.ts"
    doc = bson.encode({"control": {"version": 1}})
    data, _ = make_archive([("db", "system.buckets.ts", doc)], [meta])
    _, metas, blocks = walk(data)
    assert metas[0]["collection"] == "ts" and metas[0]["type"] == "timeseries"
    assert blocks[0].header["collection"] == "system.buckets.ts"
    got = collect(ArchiveReader(io.BytesIO(data)))
    assert bytes(got.data["db.system.buckets.ts"]) == doc


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_a_document_of_the_maximum_size_round_trips(compression: Method) -> None:
    big = bson.encode({"_id": 1, "blob": Binary(b"\x00" * 10)})
    padding = 16 * 1024 * 1024 - len(big)
    big = bson.encode({"_id": 1, "blob": Binary(b"\xa5" * (10 + padding))})
    assert len(big) == 16 * 1024 * 1024
    small = bson.encode({"_id": 2})
    meta = CollectionMeta.build("db", "big")
    data, stats = make_archive(
        [("db", "big", small + big + small)], [meta], compression=compression
    )
    got = collect(open_archive(io.BytesIO(data)))
    assert got.data["db.big"] == small + big + small
    assert got.ends["db.big"].crc == stats[0].crc


def test_oplog_sized_documents_up_to_the_internal_limit_are_accepted() -> None:
    doc = bson.encode({"o": Binary(b"\x01" * 100)})
    doc = bson.encode({"o": Binary(b"\x01" * (100 + MAX_DOCUMENT_SIZE - len(doc)))})
    assert len(doc) == MAX_DOCUMENT_SIZE
    data, _ = make_archive([("", "oplog", doc)], [CollectionMeta("", "oplog")])
    got = collect(ArchiveReader(io.BytesIO(data)))
    assert got.counts[".oplog"] == 1


def test_db_filter_reports_only_that_database_but_reads_everything() -> None:
    collections = [CollectionMeta.build("a", "x"), CollectionMeta.build("b", "y")]
    doc = bson.encode({"k": 1})
    data, _ = make_archive([("a", "x", doc), ("b", "y", doc * 3)], collections)
    reader = ArchiveReader(io.BytesIO(data), db="b")
    assert [m.namespace for m in reader.collections] == ["b.y"]
    got = collect(reader)
    assert set(got.data) == set(got.ends) == {"b.y"}
    assert got.counts["b.y"] == 3


def test_an_archive_can_be_iterated_only_once() -> None:
    data, _ = make_archive([], [CollectionMeta.build("a", "x")])
    reader = ArchiveReader(io.BytesIO(data))
    list(reader)
    with pytest.raises(ValueError, match="once"):
        iter(reader)
