"""A damaged or unacceptable archive is refused with a message that says what is wrong, and the
target is left exactly as it was: no half-restored database, no staging leftovers."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import bson
import pytest

from monarch import backup, restore
from monarch.archive import ArchiveWriter, CollectionMeta
from monarch.errors import ArchiveError, BackupError, IndexRefused, MonarchError
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    edit_manifest,
    leftovers,
    seed,
    snapshot,
    two_dbs_fixture,
    write_archive,
)


def stored(two_dbs: TwoDbs, compression: str = "none") -> tuple[str, Path, Path]:
    """Back up the seeded source; return the backup's name, archive path and manifest path."""
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=11)
    made = backup(two_dbs.config(), "development", compression=compression)
    folder = two_dbs.root / "backups"
    return made.name, folder / made.manifest.archive.key, folder / f"{made.name}.manifest.json"


def refused(two_dbs: TwoDbs, source: str, error: type[MonarchError], match: str) -> MonarchError:
    """Restore ``source`` into staging, expect ``error``, and check the target is untouched."""
    before = snapshot(two_dbs.target)
    with pytest.raises(error, match=match) as caught:
        restore(two_dbs.config(), source, "staging")
    assert snapshot(two_dbs.target) == before
    assert leftovers(two_dbs.target) == []
    return caught.value


def test_a_file_that_is_not_an_archive_is_refused_by_its_magic(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    junk = two_dbs.root / "notes.archive"
    junk.write_bytes(b"these are not the bytes you are looking for" * 10)

    refused(two_dbs, str(junk), ArchiveError, "not a mongodump archive")


def test_a_backup_whose_archive_lost_its_magic_is_refused(two_dbs: TwoDbs) -> None:
    name, archive, _ = stored(two_dbs)
    data = bytearray(archive.read_bytes())
    data[:4] = b"\x00\x01\x02\x03"
    archive.write_bytes(bytes(data))

    refused(two_dbs, name, ArchiveError, "not a mongodump archive")


def test_an_archive_cut_inside_a_document_is_refused_as_truncated(two_dbs: TwoDbs) -> None:
    name, archive, _ = stored(two_dbs)
    data = archive.read_bytes()
    archive.write_bytes(data[: int(len(data) * 0.6)])

    refused(two_dbs, name, ArchiveError, "truncated")


def test_a_flipped_byte_in_a_document_is_refused_by_the_crc(two_dbs: TwoDbs) -> None:
    name, archive, _ = stored(two_dbs)
    data = archive.read_bytes()
    at = data.index(b"user 150")
    archive.write_bytes(data[:at] + b"user 15X" + data[at + 8:])

    refused(two_dbs, name, ArchiveError, "CRC mismatch for namespace .*users")


def test_a_document_count_that_disagrees_with_the_manifest_is_refused(two_dbs: TwoDbs) -> None:
    name, _, manifest = stored(two_dbs)

    def fewer(doc: dict[str, Any]) -> None:
        for entry in doc["collections"]:
            if entry["name"] == "users":
                entry["documents"] = 299

    edit_manifest(manifest, fewer)

    refused(two_dbs, name, ArchiveError, "users.*300 documents in the archive, 299 in the manif")


def test_a_sha256_that_disagrees_with_the_manifest_is_refused(two_dbs: TwoDbs) -> None:
    name, _, manifest = stored(two_dbs, "zstd")
    edit_manifest(manifest, lambda doc: doc["archive"].update(sha256="0" * 64))

    refused(two_dbs, name, ArchiveError, "SHA-256")


def test_a_collection_listed_in_the_manifest_but_absent_from_the_archive_is_refused(
    two_dbs: TwoDbs,
) -> None:
    name, _, manifest = stored(two_dbs)

    def extra(doc: dict[str, Any]) -> None:
        doc["collections"].append({"name": "ghost", "type": "collection", "documents": 1,
                                   "bytes": 10, "crc64": "0" * 16})

    edit_manifest(manifest, extra)

    refused(two_dbs, name, ArchiveError, "ghost.*not in the archive")


def test_a_backup_whose_archive_is_missing_from_the_store_is_refused(two_dbs: TwoDbs) -> None:
    name, archive, _ = stored(two_dbs)
    archive.unlink()

    refused(two_dbs, name, ArchiveError, "missing")


def test_a_damaged_gzip_stream_is_refused(two_dbs: TwoDbs) -> None:
    name, archive, _ = stored(two_dbs, "gzip")
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(16)
    archive.write_bytes(bytes(data))

    refused(two_dbs, name, ArchiveError, "gzip|CRC|corrupt")


def test_a_gzip_archive_cut_short_is_refused(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    whole = write_archive(two_dbs.root / "x.archive", [
        (CollectionMeta.build("shop", "items"), [bson.encode({"_id": i}) for i in range(500)]),
    ])
    cut = two_dbs.root / "cut.archive.gz"
    cut.write_bytes(gzip.compress(whole.read_bytes())[:-40])

    refused(two_dbs, str(cut), ArchiveError, "truncated")


def test_an_archive_without_its_end_of_collection_blocks_is_refused(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    out = io.BytesIO()
    writer = ArchiveWriter(out)
    writer.write_header([CollectionMeta.build("shop", "items")], "7.0.0", "monarch-tests")
    writer.write_documents("shop", "items", b"".join(bson.encode({"_id": i}) for i in range(50)))
    # The segment is closed, but the end-of-collection block (with the CRC) never comes.
    path = two_dbs.root / "no-eof.archive"
    path.write_bytes(out.getvalue() + b"\xff\xff\xff\xff")

    refused(two_dbs, str(path), ArchiveError, "before the end of 1 namespace")


def test_an_archive_holding_the_same_id_twice_is_refused_naming_the_duplicate(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.target)
    docs = [bson.encode({"_id": i % 40, "n": i}) for i in range(50)]
    path = write_archive(two_dbs.root / "dup.archive", [(CollectionMeta.build("shop", "items"),
                                                         docs)])

    error = refused(two_dbs, str(path), BackupError, "code 11000")
    assert error.hint is not None and "same _id twice" in error.hint


def test_an_index_with_an_option_no_server_knows_fails_naming_the_index(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    meta = CollectionMeta.build("shop", "items", indexes=[
        {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        {"v": 2, "key": {"sku": 1}, "name": "sku_1"},
        {"v": 2, "key": {"n": 1}, "name": "weird_n", "noSuchIndexOption": True},
    ])
    path = write_archive(two_dbs.root / "weird.archive",
                         [(meta, [bson.encode({"sku": f"s{i}", "n": i}) for i in range(20)])])

    error = refused(two_dbs, str(path), IndexRefused, "index 'weird_n' of collection 'items'")
    assert isinstance(error, IndexRefused) and error.index == "weird_n"


def test_a_unique_index_the_data_breaks_fails_naming_the_index(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    meta = CollectionMeta.build("shop", "items", indexes=[
        {"v": 2, "key": {"sku": 1}, "name": "sku_unique", "unique": True},
    ])
    docs = [bson.encode({"sku": "same"}) for _ in range(3)]
    path = write_archive(two_dbs.root / "dupsku.archive", [(meta, docs)])

    refused(two_dbs, str(path), IndexRefused, "sku_unique")


@pytest.mark.parametrize("index", [
    {"key": {"seen": 1}, "name": "seen_ttl", "expireAfterSeconds": 3600},
    {"key": {"_fts": "text", "_ftsx": 1}, "name": "body_text", "weights": {"body": 1},
     "default_language": "english", "language_override": "language", "textIndexVersion": 3},
])
def test_an_index_ferretdb_cannot_build_fails_by_name_instead_of_being_weakened(
    two_dbs: TwoDbs, index: dict[str, Any]
) -> None:
    if not two_dbs.server.is_ferretdb:
        pytest.skip("this server builds TTL and text indexes; the refusal is FerretDB's")
    seed(two_dbs.target)
    meta = CollectionMeta.build("shop", "posts", indexes=[{"v": 2, **index}])
    path = write_archive(two_dbs.root / "posts.archive",
                         [(meta, [bson.encode({"body": "hello", "seen": 1})])])

    refused(two_dbs, str(path), IndexRefused, f"index {index['name']!r}")


def test_a_time_series_collection_is_refused_before_anything_is_touched(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    meta = CollectionMeta.build("shop", "metrics", type="timeseries",
                                options={"timeseries": {"timeField": "t"}})
    path = write_archive(two_dbs.root / "ts.archive", [(meta, [])])

    refused(two_dbs, str(path), BackupError, "time-series")
