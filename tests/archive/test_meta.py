"""Collection metadata: the .metadata.json text mongodump writes, and its parsed view."""

from __future__ import annotations

import uuid

import pytest
from bson import Binary, Int64

from monarch.archive import CollectionMeta, build_metadata_json
from monarch.errors import ArchiveError


def test_metadata_json_matches_mongodump_byte_for_byte() -> None:
    # As written by mongodump 100.3 for admin.system.version (timeseries_tests/dump.archive).
    expected = (
        '{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},'
        '"name":"_id_"}],"uuid":"2166e09af3a34889b443b226a582299c",'
        '"collectionName":"system.version","type":"collection"}'
    )
    text = build_metadata_json(
        "system.version",
        indexes=[{"v": 2, "key": {"_id": 1}, "name": "_id_"}],
        uuid="2166e09af3a34889b443b226a582299c",
    )
    assert text == expected


def test_options_come_first_and_empty_options_are_left_out() -> None:
    text = build_metadata_json("c", options={"capped": True, "size": Int64(4096)})
    assert text.startswith('{"options":{"capped":true,"size":{"$numberLong":"4096"}}')
    assert '"options"' not in build_metadata_json("c", options={})


def test_uuid_is_accepted_in_every_form_the_driver_gives() -> None:
    value = uuid.UUID("2166e09a-f3a3-4889-b443-b226a582299c")
    for given in (value, Binary(value.bytes, 4), str(value), value.hex):
        assert CollectionMeta.build("d", "c", uuid=given).uuid == value.hex


def test_unicode_names_are_written_as_utf8_not_escapes() -> None:
    assert '"collectionName":"cafés"' in build_metadata_json("cafés")


def test_parsing_accepts_relaxed_json_and_drops_ns_from_indexes() -> None:
    meta = CollectionMeta(
        "test",
        "bar",
        '{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_","ns":"test.bar"}]}',
    )
    assert meta.indexes == [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    assert meta.options == {}
    assert meta.uuid is None


def test_parsing_round_trips_what_build_wrote() -> None:
    indexes = [{"v": 2, "key": {"a": 1, "b": -1}, "name": "a_1_b_-1", "unique": True}]
    meta = CollectionMeta.build(
        "d", "c", options={"validator": {"$jsonSchema": {}}}, indexes=indexes, type="collection"
    )
    assert meta.indexes == indexes
    assert list(meta.indexes[0]["key"]) == ["a", "b"]  # key order matters for an index
    assert meta.options == {"validator": {"$jsonSchema": {}}}
    assert meta.parsed["collectionName"] == "c"


def test_time_series_data_lives_in_the_buckets_collection() -> None:
    assert CollectionMeta("d", "ts", type="timeseries").data_collection == "system.buckets.ts"
    assert CollectionMeta("d", "plain").data_collection == "plain"


def test_empty_metadata_means_no_options_and_no_indexes() -> None:
    meta = CollectionMeta("", "oplog")
    assert (meta.parsed, meta.options, meta.indexes, meta.uuid) == ({}, {}, [], None)


@pytest.mark.parametrize("text", ["[1, 2]", '{"indexes": 5}', '{"options": []}', "{"])
def test_malformed_metadata_is_an_archive_error(text: str) -> None:
    meta = CollectionMeta("d", "c", text)
    with pytest.raises(ArchiveError, match=r"'d\.c'"):
        _ = (meta.options, meta.indexes)
