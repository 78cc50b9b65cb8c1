"""Directory dumps (mongodump --out) read as the same events as an archive."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import bson
import pytest

from monarch.archive import (
    ArchiveReader,
    CollectionMeta,
    DirectoryReader,
    TruncatedArchive,
    crc64,
)
from monarch.errors import ArchiveError
from tests.archive.helpers import collect, make_archive

ORDERS = [bson.encode({"_id": i, "total": i * 1.5}) for i in range(50)]
CAFES = [bson.encode({"name": "Café Crème"})]
BUCKETS = [bson.encode({"control": {"version": 1}, "meta": i}) for i in range(3)]
OPLOG = [bson.encode({"op": "n", "ts": bson.Timestamp(1, i)}) for i in range(2)]
LONG = "x" * 300  # a name too long for a file name: mongodump shortens it
LONG_FILE = "x" * 208 + "%24" + "A" * 27

COLLECTIONS = {
    "orders": CollectionMeta.build(
        "shop", "orders", indexes=[{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    ),
    "cafés": CollectionMeta.build("shop", "cafés"),
    "recent": CollectionMeta.build(
        "shop", "recent", type="view", options={"viewOn": "orders", "pipeline": []}
    ),
    "metrics": CollectionMeta.build(
        "shop", "metrics", type="timeseries", options={"timeseries": {"timeField": "t"}}
    ),
    LONG: CollectionMeta.build("other", LONG),
}


def write(path: Path, data: bytes, gz: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def build_dump(root: Path, gz: bool) -> Path:
    """A dump folder laid out the way mongodump writes one."""
    shop = root / "shop"
    write(shop / "orders.bson", b"".join(ORDERS), gz)
    write(shop / "orders.metadata.json", COLLECTIONS["orders"].metadata.encode(), gz)
    write(shop / "caf%C3%A9s.bson", b"".join(CAFES), gz)
    write(shop / "caf%C3%A9s.metadata.json", COLLECTIONS["cafés"].metadata.encode(), gz)
    write(shop / "recent.metadata.json", COLLECTIONS["recent"].metadata.encode(), gz)
    write(shop / "system.buckets.metrics.bson", b"".join(BUCKETS), gz)
    write(shop / "metrics.metadata.json", COLLECTIONS["metrics"].metadata.encode(), gz)
    write(shop / "bare.bson", b"", gz)  # a collection with no metadata file
    write(root / "other" / f"{LONG_FILE}.bson", ORDERS[0], gz)
    write(root / "other" / f"{LONG_FILE}.metadata.json", COLLECTIONS[LONG].metadata.encode(), gz)
    write(root / "oplog.bson", b"".join(OPLOG), gz)
    (root / "prelude.json").write_text(
        json.dumps({"ServerVersion": "7.0.2", "ToolVersion": "100.10.0"})
    )
    (root / "README.txt").write_text("stray files are ignored")
    (shop / "notes.txt").write_text("so are these")
    (shop / "subdir").mkdir()
    return root


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_directory_dump_reads_with_names_types_and_data(tmp_path: Path, gz: bool) -> None:
    reader = DirectoryReader(build_dump(tmp_path, gz))
    assert reader.header["server_version"] == "7.0.2"
    assert reader.header["tool_version"] == "100.10.0"
    metas = {m.namespace: m for m in reader.collections}
    assert list(metas) == [
        "other." + LONG,
        "shop.bare",
        "shop.cafés",
        "shop.metrics",
        "shop.orders",
        "shop.recent",
        ".oplog",
    ]
    assert metas["shop.recent"].type == "view"
    assert metas["shop.metrics"].type == "timeseries"
    assert metas["shop.orders"].indexes == [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    assert metas["shop.bare"].metadata == ""
    got = collect(reader)
    expected = {
        "shop.orders": ORDERS,
        "shop.cafés": CAFES,
        "shop.system.buckets.metrics": BUCKETS,
        "other." + LONG: ORDERS[:1],
        ".oplog": OPLOG,
        "shop.recent": [],
        "shop.bare": [],
    }
    assert set(got.ends) == set(expected)
    for ns, docs in expected.items():
        raw = b"".join(docs)
        assert bytes(got.data.get(ns, b"")) == raw
        end = got.ends[ns]
        assert (end.documents, end.size, end.crc) == (len(docs), len(raw), crc64(raw))


def test_directory_and_archive_of_the_same_data_give_the_same_events(tmp_path: Path) -> None:
    from_directory = collect(DirectoryReader(build_dump(tmp_path, gz=False), db="shop"))
    collections = [m for m in DirectoryReader(tmp_path, db="shop").collections]
    batches = [
        (m.db, m.data_collection, bytes(from_directory.data[ns]))
        for m in collections
        if (ns := f"{m.db}.{m.data_collection}") in from_directory.data
    ]
    data, _ = make_archive(batches, collections)
    from_archive = collect(ArchiveReader(io.BytesIO(data)))
    assert from_archive.data == from_directory.data
    assert from_archive.ends == from_directory.ends


def test_db_filter_reads_only_that_database(tmp_path: Path) -> None:
    reader = DirectoryReader(build_dump(tmp_path, gz=False), db="other")
    assert [m.collection for m in reader.collections] == [LONG]
    assert set(collect(reader).ends) == {"other." + LONG}


def test_small_chunks_split_on_document_boundaries(tmp_path: Path) -> None:
    reader = DirectoryReader(build_dump(tmp_path, gz=True), chunk_size=1, read_size=7)
    got = collect(reader)
    assert got.counts["shop.orders"] == len(ORDERS)
    assert bytes(got.data["shop.orders"]) == b"".join(ORDERS)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_truncated_bson_file_is_refused_naming_it(tmp_path: Path, gz: bool) -> None:
    write(tmp_path / "db" / "c.bson", b"".join(ORDERS)[:-7], gz)
    with pytest.raises(TruncatedArchive, match=r"c\.bson"):
        collect(DirectoryReader(tmp_path))


def test_a_cut_gzip_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "c.bson.gz").write_bytes(gzip.compress(b"".join(ORDERS))[:-5])
    with pytest.raises(TruncatedArchive, match="gzip"):
        collect(DirectoryReader(tmp_path))


def test_metadata_without_its_data_file_is_an_incomplete_dump(tmp_path: Path) -> None:
    write(
        tmp_path / "db" / "c.metadata.json",
        CollectionMeta.build("db", "c").metadata.encode(),
        False,
    )
    with pytest.raises(ArchiveError, match=r"no c\.bson") as caught:
        DirectoryReader(tmp_path)
    assert caught.value.hint is not None


def test_both_plain_and_gzip_files_for_one_collection_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "db" / "c.bson", ORDERS[0], False)
    write(tmp_path / "db" / "c.bson", ORDERS[0], True)
    with pytest.raises(ArchiveError, match="two files for collection 'c'"):
        DirectoryReader(tmp_path)


def test_a_shortened_name_without_metadata_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "db" / f"{LONG_FILE}.bson", ORDERS[0], False)
    with pytest.raises(ArchiveError, match="shortened"):
        DirectoryReader(tmp_path)


def test_invalid_metadata_json_names_the_collection(tmp_path: Path) -> None:
    write(tmp_path / "db" / "c.bson", ORDERS[0], False)
    write(tmp_path / "db" / "c.metadata.json", b'{"indexes": [', False)
    with pytest.raises(ArchiveError, match=r"'db\.c' is not valid Extended JSON"):
        DirectoryReader(tmp_path)


def test_a_missing_directory_is_an_archive_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not a directory dump"):
        DirectoryReader(tmp_path / "nope")


def test_the_legacy_system_indexes_file_is_skipped_when_metadata_exists(tmp_path: Path) -> None:
    write(tmp_path / "db" / "c.bson", ORDERS[0], False)
    write(
        tmp_path / "db" / "c.metadata.json",
        CollectionMeta.build("db", "c").metadata.encode(),
        False,
    )
    write(tmp_path / "db" / "system.indexes.bson", ORDERS[1], False)
    assert [m.collection for m in DirectoryReader(tmp_path).collections] == ["c"]
