"""Dumps written by real mongodump releases (mongo-tools' own test data) read correctly."""

from __future__ import annotations

from pathlib import Path

import bson
import pytest

from monarch.archive import (
    ArchiveReader,
    CollectionMeta,
    DirectoryReader,
    NotAnArchive,
    crc64,
    iter_documents,
    open_archive,
)
from monarch.errors import ArchiveError
from tests.archive.helpers import collect, walk

GOOD_ARCHIVES = {
    # file: {namespace: document count}
    "test.bar.archive": {"test.bar": 1, "admin.system.version": 1},
    "dump-w-oplog.archive": {"test.foo": 25, ".oplog": 18, "admin.system.version": 1},
    "timeseries_tests/dump.archive": {
        "admin.system.views": 0,
        "admin.system.version": 1,
        "timeseries_test.system.buckets.foo_ts": 10,
    },
}


@pytest.mark.parametrize("name", sorted(GOOD_ARCHIVES))
def test_sample_archives_read_with_every_crc_checked(sample_testdata: Path, name: str) -> None:
    data = (sample_testdata / name).read_bytes()
    with (sample_testdata / name).open("rb") as file:
        got = collect(ArchiveReader(file))
    assert {ns: end.documents for ns, end in got.ends.items()} == GOOD_ARCHIVES[name]
    # Our CRCs agree with the ones mongodump stored (the reader would have raised otherwise),
    # and with an independent walk of the file.
    _, _, blocks = walk(data)
    stored = {
        f"{b.header['db']}.{b.header['collection']}": b.header["CRC"]
        for b in blocks
        if b.header["EOF"]
    }
    for ns, end in got.ends.items():
        assert end.crc == stored[ns] % 2**64
        assert end.crc == crc64(bytes(got.data.get(ns, b"")))
        assert all(bson.decode(bytes(d)) is not None for d in iter_documents(got.data.get(ns, b"")))


def test_sample_archive_metadata_is_understood(sample_testdata: Path) -> None:
    with (sample_testdata / "timeseries_tests/dump.archive").open("rb") as file:
        reader = open_archive(file)
    by_name = {m.namespace: m for m in reader.collections}
    ts = by_name["timeseries_test.foo_ts"]
    assert ts.type == "timeseries"
    assert ts.data_collection == "system.buckets.foo_ts"
    assert ts.options["timeseries"]["timeField"] == "ts"
    assert [i["name"] for i in ts.indexes] == ["meta.device_1", "ts_1_meta.device_1"]
    assert reader.header["server_version"] == "5.0.0-rc0"


def test_old_relaxed_metadata_with_ns_in_indexes_is_accepted(sample_testdata: Path) -> None:
    with (sample_testdata / "test.bar.archive").open("rb") as file:
        reader = open_archive(file)
    meta = next(m for m in reader.collections if m.namespace == "admin.system.version")
    assert meta.type == "collection"
    assert [i["name"] for i in meta.indexes] == ["_id_", "incompatible_with_version_32"]
    assert all("ns" not in i for i in meta.indexes)
    assert '"ns"' in meta.metadata  # the text itself is kept as it was


def test_the_oplog_has_empty_metadata(sample_testdata: Path) -> None:
    with (sample_testdata / "dump-w-oplog.archive").open("rb") as file:
        reader = open_archive(file)
    oplog = next(m for m in reader.collections if m.db == "")
    assert oplog == CollectionMeta("", "oplog", "", "collection")
    assert oplog.indexes == [] and oplog.options == {}


def test_the_deliberately_broken_sample_is_refused(sample_testdata: Path) -> None:
    with (
        (sample_testdata / "bad-format.archive").open("rb") as file,
        pytest.raises(ArchiveError, match=r"test\.ixtest.*not valid Extended JSON"),
    ):
        ArchiveReader(file)


def test_a_sample_bson_file_is_not_an_archive(sample_testdata: Path) -> None:
    with (
        (sample_testdata / "test_auto_idx.bson").open("rb") as file,
        pytest.raises(NotAnArchive, match="plain BSON"),
    ):
        ArchiveReader(file)


LONG_NAME = (
    "aVery" + "Very" * 43 + "LongCollectionNameConsistingOfExactlyTwoHundredAndFortySevenCharacters"
)
SAMPLE_DIRECTORIES = {
    # dump folder: {namespace: its .bson file relative to the folder}
    "foodump": {"test.foo": "test/foo.bson"},
    "oplogdump": {
        "db1.c1": "db1/c1.bson",
        "admin.system.version": "admin/system.version.bson",
        ".oplog": "oplog.bson",
    },
    "specialcharacter": {"db1.cafés": "db1/caf%C3%A9s.bson"},
    "timeseries_tests/ts_dump": {
        "timeseries_test.system.buckets.foo_ts": "timeseries_test/system.buckets.foo_ts.bson",
        "admin.system.version": "admin/system.version.bson",
        "admin.system.views": "admin/system.views.bson",
    },
    "longcollectionname": {
        f"db1.{LONG_NAME}": "db1/" + LONG_NAME[:208] + "%24xFO0VquRn7cg3QooSZD5sglTddU.bson",
    },
    "usersdump": {
        f"admin.system.{c}": f"admin/system.{c}.bson" for c in ("users", "roles", "version")
    },
}


@pytest.mark.parametrize("name", sorted(SAMPLE_DIRECTORIES))
def test_sample_directory_dumps_read(sample_testdata: Path, name: str) -> None:
    folder = sample_testdata / name
    got = collect(DirectoryReader(folder))
    assert set(got.ends) == set(SAMPLE_DIRECTORIES[name])
    for ns, file in SAMPLE_DIRECTORIES[name].items():
        raw = (folder / file).read_bytes()
        assert bytes(got.data.get(ns, b"")) == raw
        assert got.ends[ns].documents == len(bson.decode_all(raw))
        assert got.ends[ns].crc == crc64(raw)


def test_sample_directory_metadata_is_understood(sample_testdata: Path) -> None:
    reader = DirectoryReader(sample_testdata / "timeseries_tests" / "ts_dump")
    by_name = {m.namespace: m for m in reader.collections}
    assert by_name["timeseries_test.foo_ts"].type == "timeseries"
    assert by_name["timeseries_test.foo_ts"].options["timeseries"]["metaField"] == "meta"
    reader = DirectoryReader(sample_testdata / "longcollectionname")
    assert [m.collection for m in reader.collections] == [LONG_NAME]
