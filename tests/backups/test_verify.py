"""verify(): the whole archive is read back and checked against the manifest."""

from __future__ import annotations

import json

import pytest

from monarch import backup, verify
from monarch.backups.writer import BackupResult
from monarch.errors import BackupNotFound, UsageError
from tests.backups.conftest import Project


def rewrite(project: Project, key: str, data: bytes) -> None:
    store = project.store()
    store.delete(key)
    with store.writer(key) as upload:
        upload.write(data)


def read(project: Project, key: str) -> bytes:
    with project.store().reader(key) as f:
        return f.read()


def edit_manifest(project: Project, result: BackupResult, change: object) -> None:
    key = result.manifest_key
    doc = json.loads(read(project, key))
    change(doc)  # type: ignore[operator]
    rewrite(project, key, json.dumps(doc).encode())


@pytest.fixture
def made(shop: Project) -> BackupResult:
    return backup(shop.config(), "development")


def test_a_fresh_backup_is_sound(any_project: Project) -> None:
    any_project.db.things.insert_many([{"i": i} for i in range(50)])
    result = backup(any_project.config(), "development")

    checked = verify(any_project.config(), result.name)

    assert checked.ok and checked.problems == ()
    assert checked.collections == 1 and checked.documents == 50
    assert checked.size == result.size


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_every_compression_verifies(shop: Project, compression: str) -> None:
    result = backup(shop.config(), "development", compression=compression)

    assert verify(shop.config(), result.name).ok


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
def test_a_flipped_byte_is_detected(shop: Project, made: BackupResult, where: float) -> None:
    data = bytearray(read(shop, made.archive_key))
    data[int(len(data) * where)] ^= 0x40
    rewrite(shop, made.archive_key, bytes(data))

    checked = verify(shop.config(), made.name)

    assert not checked.ok
    assert any(p.startswith("SHA-256") for p in checked.problems)


def test_a_flipped_byte_in_an_uncompressed_archive_fails_its_crc(shop: Project) -> None:
    result = backup(shop.config(), "development", compression="none")
    data = bytearray(read(shop, result.archive_key))
    # Inside the documents: past the header and metadata, well before the end.
    data[len(data) // 2] ^= 0x01
    rewrite(shop, result.archive_key, bytes(data))

    checked = verify(shop.config(), result.name)

    assert not checked.ok
    assert any("CRC" in p or "corrupt" in p for p in checked.problems), checked.problems


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_a_truncated_archive_is_detected(shop: Project, made: BackupResult, keep: float) -> None:
    data = read(shop, made.archive_key)
    rewrite(shop, made.archive_key, data[: int(len(data) * keep)])

    checked = verify(shop.config(), made.name)

    assert not checked.ok
    assert any("truncated" in p for p in checked.problems), checked.problems
    assert any(p.startswith("size:") for p in checked.problems)


def test_a_missing_archive_is_reported(shop: Project, made: BackupResult) -> None:
    shop.store().delete(made.archive_key)

    checked = verify(shop.config(), made.name)

    assert checked.problems == (f"the archive {made.archive_key} is missing",)


def test_a_collection_dropped_from_the_manifest_is_reported(
    shop: Project, made: BackupResult
) -> None:
    edit_manifest(shop, made, lambda doc: doc["collections"].pop(0))

    checked = verify(shop.config(), made.name)

    assert checked.problems == (
        "the archive has collection(s) the manifest does not list: empty",)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("documents", 1, "1 in the manifest"),
        ("bytes", 7, "7 in the manifest"),
        ("crc64", "0000000000000001", "0000000000000001 in the manifest"),
    ],
)
def test_counts_and_crcs_are_checked_against_the_manifest(
    shop: Project, made: BackupResult, field: str, value: object, expected: str
) -> None:
    def change(doc: dict[str, list[dict[str, object]]]) -> None:
        users = next(c for c in doc["collections"] if c["name"] == "users")
        users[field] = value

    edit_manifest(shop, made, change)

    checked = verify(shop.config(), made.name)

    assert len(checked.problems) == 1
    assert checked.problems[0].startswith("collection 'users'")
    assert expected in checked.problems[0]


def test_an_extra_manifest_collection_is_reported(shop: Project, made: BackupResult) -> None:
    def change(doc: dict[str, list[dict[str, object]]]) -> None:
        doc["collections"].append(dict(doc["collections"][0], name="ghost"))

    edit_manifest(shop, made, change)

    checked = verify(shop.config(), made.name)

    assert checked.problems == (
        "collection 'ghost' is in the manifest, not in the archive",)


def test_unknown_backup_is_not_found(project: Project) -> None:
    with pytest.raises(BackupNotFound, match="no backup 'development-20200101T000000Z'"):
        verify(project.config(), "development-20200101T000000Z")


def test_a_malformed_name_is_a_usage_error(project: Project) -> None:
    with pytest.raises(UsageError, match="is not a backup name"):
        verify(project.config(), "last-tuesday")
