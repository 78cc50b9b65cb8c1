"""What a restore says about a mongodump directory it cannot take: the file, the name or byte at
fault, and nothing touched."""

from __future__ import annotations

from pathlib import Path

import bson
import pytest

from monarch import restore
from monarch.archive import CollectionMeta
from monarch.errors import ArchiveError
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    leftovers,
    seed,
    snapshot,
    two_dbs_fixture,
    write_archive,
)


def directory_dump(root: Path, files: dict[str, bytes]) -> Path:
    """A dump folder ``root/dump`` holding database ``source`` with ``files``."""
    folder = root / "dump" / "source"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder.parent


def documents(count: int) -> bytes:
    return b"".join(bson.encode({"_id": i, "name": f"user {i}", "n": i * 1.5, "tags": ["a", "b"]})
                    for i in range(count))


@pytest.mark.parametrize("file_name, shown", [
    ("..%2F..%2Fetc.bson", "'../../etc'"),
    ("%24cmd.bson", "'$cmd'"),
    ("a%00b.bson", "'a\\x00b'"),
])
def test_a_collection_name_the_server_refuses_is_named_with_its_file(
    two_dbs: TwoDbs, file_name: str, shown: str
) -> None:
    seed(two_dbs.target)
    dump = directory_dump(two_dbs.root, {"good.bson": documents(5), file_name: documents(3)})
    before = snapshot(two_dbs.target)

    with pytest.raises(ArchiveError) as caught:
        restore(two_dbs.config(), str(dump), "staging")

    message = caught.value.message
    assert "not a valid collection name" in message and shown in message
    assert file_name in message
    assert "shorter name" not in (caught.value.hint or "")
    assert snapshot(two_dbs.target) == before and leftovers(two_dbs.target) == []
    assert not (two_dbs.root / "etc").exists()


def test_a_flipped_byte_in_a_bson_file_is_reported_as_damage_with_its_offset(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.target)
    data = bytearray(documents(200))
    second = len(bson.encode({"_id": 0, "name": "user 0", "n": 0.0, "tags": ["a", "b"]}))
    data[second + 4] = 0x77  # the first element's type byte of the second document
    dump = directory_dump(two_dbs.root, {"users.bson": bytes(data)})
    before = snapshot(two_dbs.target)

    with pytest.raises(ArchiveError) as caught:
        restore(two_dbs.config(), str(dump), "staging")

    message = caught.value.message
    assert "users.bson" in message and "damaged" in message
    assert f"byte {second:,}" in message or f"byte {second}" in message
    assert "cannot reach" not in message
    assert snapshot(two_dbs.target) == before and leftovers(two_dbs.target) == []


def test_a_damaged_document_in_an_archive_is_reported_by_its_crc_not_as_a_lost_server(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.target)
    docs = [bson.encode({"_id": i, "name": f"user {i}", "n": 1.5}) for i in range(200)]
    path = write_archive(two_dbs.root / "users.archive",
                         [(CollectionMeta.build("source", "users"), docs)])
    data = bytearray(path.read_bytes())
    data[data.index(docs[1]) + 4] = 0x77  # an element type no BSON has, as a flipped byte
    path.write_bytes(bytes(data))
    before = snapshot(two_dbs.target)

    with pytest.raises(ArchiveError, match=r"CRC mismatch for namespace 'source\.users'"):
        restore(two_dbs.config(), str(path), "staging")

    assert snapshot(two_dbs.target) == before and leftovers(two_dbs.target) == []
