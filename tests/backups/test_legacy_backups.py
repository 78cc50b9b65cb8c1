"""Backups made by monarch 0.0.x: ``<db>__YYYY_MM_DD[_N].dmp.zip``, a zip of one database's
``mongodump --out`` files flattened to the zip's root. The zips here are made as the original
made them: the real mongodump against the real test server, then Python's zipfile (deflate).
They are listed, verified, restored (from the store, local and S3, and from a path), deleted
one by one and never pruned."""

from __future__ import annotations

import io
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database

import monarch
from monarch.archive.limits import SizeLimitExceeded
from monarch.archive.zipdump import check_zip_dump
from monarch.backups.legacy import LegacyBackup
from monarch.backups.writer import BackupResult
from monarch.errors import ArchiveError, BackupNotFound, UsageError
from tests.backups.conftest import Project
from tests.backups.restore_support import seed, snapshot
from tests.servers import MongoServer, MongoTools

DAY_ONE = "legacy_app_dev__2016_11_01"
DAY_ONE_SECOND = "legacy_app_dev__2016_11_01_2"


@dataclass
class LegacySource:
    """A database as the original tool backed it up, and the zip it made of it."""

    db: Database[dict[str, Any]]
    zip_path: Path


def original_history(db: Database[dict[str, Any]]) -> None:
    """The original's history: mongoengine documents {_id, key, state}."""
    db.mongo_migration_history.insert_many([
        {"_id": ObjectId(), "key": "_201611011200_prices_to_cents_migration", "state": "Completed"},
        {"_id": ObjectId(), "key": "_201611021200_add_index_migration", "state": "Failed"},
    ])


def make_legacy_zip(tools: MongoTools, server: MongoServer, db_name: str, work: Path,
                    zip_path: Path) -> Path:
    """mongodump one database, then zip its folder's files at the zip's root, as 0.0.x did."""
    out = work / f"dump-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        [str(tools.mongodump), f"--uri={server.uri}", f"--db={db_name}", f"--out={out}"],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted((out / db_name).iterdir()):
            archive.write(file, arcname=file.name)
    return zip_path


@pytest.fixture
def legacy_source(
    tmp_path: Path, mongo_server: MongoServer, mongo_tools: MongoTools
) -> Iterator[LegacySource]:
    """A seeded database with the original's history, and its legacy zip (not yet stored)."""
    name = f"t_{uuid.uuid4().hex[:12]}_legacy"
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri,
                                                      serverSelectionTimeoutMS=5000)
    db = client[name]
    try:
        seed(db)
        original_history(db)
        zip_path = make_legacy_zip(mongo_tools, mongo_server, name, tmp_path,
                                   tmp_path / f"{DAY_ONE}.dmp.zip")
        yield LegacySource(db, zip_path)
    finally:
        client.drop_database(name)
        client.close()


def put(project: Project, key: str, data: bytes) -> None:
    """Store ``data`` under ``key`` at the store's root, as the original's upload did."""
    with project.store().writer(key) as upload:
        upload.write(data)


def two_legacy_and_one_backup(project: Project, data: bytes) -> BackupResult:
    """The day's two legacy zips (``data`` each) and one monarch backup, in the store."""
    put(project, f"{DAY_ONE}.dmp.zip", data)
    put(project, f"{DAY_ONE_SECOND}.dmp.zip", data)
    project.db.things.insert_one({"x": 1})
    return monarch.backup(project.config(), "development")


def damaged(source: Path, target: Path, how: str) -> Path:
    """A copy of a legacy zip with one fault: a flipped byte, cut short, or bad BSON inside."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("users.bson")
        members = {i.filename: archive.read(i.filename) for i in archive.infolist()}
    if how == "flipped":
        # A byte in the middle of users.bson's compressed data: its CRC-32 no longer matches.
        header = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        data[header + info.compress_size // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif how == "truncated":
        target.write_bytes(bytes(data[: len(data) * 2 // 3]))
    else:
        # Whole-zip sound (right CRCs), but users.bson's third document is cut inside.
        users = members["users.bson"]
        docs = bson.decode_all(users)
        first = b"".join(bson.encode(d) for d in docs[:2])
        bad = bytearray(bson.encode(docs[2]))
        bad[0:4] = (len(bad) + 40).to_bytes(4, "little")
        members["users.bson"] = first + bytes(bad) + b"".join(bson.encode(d) for d in docs[3:])
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members.items():
                archive.writestr(name, content)
    return target


# ---- list_backups -------------------------------------------------------------------------


def test_list_backups_shows_legacy_zips_marked_legacy_by_date_with_their_size(
    any_project: Project, legacy_source: LegacySource
) -> None:
    data = legacy_source.zip_path.read_bytes()
    made = two_legacy_and_one_backup(any_project, data)

    listed = monarch.list_backups(any_project.config())

    assert [b.name for b in listed] == [DAY_ONE, DAY_ONE_SECOND, made.name]
    first, second = listed[0], listed[1]
    assert isinstance(first, LegacyBackup) and isinstance(second, LegacyBackup)
    assert first.legacy and first.database == "legacy_app_dev" and first.size == len(data)
    assert first.created.date().isoformat() == "2016-11-01" and second.number == 2
    result = any_project.cli("list_backups")
    assert result.code == 0, result.output
    assert DAY_ONE in result.stdout and "legacy zip (monarch 0.0.x" in result.stdout
    as_json = any_project.cli("list_backups", "--json")
    assert '"legacy": true' in as_json.stdout and '"legacy": false' in as_json.stdout


def test_list_backups_of_an_environment_shows_the_legacy_zips_of_its_database(
    project: Project, legacy_source: LegacySource
) -> None:
    own = f"{project.db.name}__2017_01_02.dmp.zip"
    put(project, own, legacy_source.zip_path.read_bytes())
    put(project, f"{DAY_ONE}.dmp.zip", legacy_source.zip_path.read_bytes())

    listed = monarch.list_backups(project.config(), "development")

    assert [b.name for b in listed] == [own.removesuffix(".dmp.zip")]


def test_a_zip_with_a_damaged_directory_is_listed_and_verify_flags_it(project: Project) -> None:
    put(project, f"{DAY_ONE}.dmp.zip", b"PK\x03\x04 this is not really a zip at all")

    [listed] = monarch.list_backups(project.config())
    result = monarch.verify(project.config(), DAY_ONE)

    assert listed.name == DAY_ONE
    assert not result.ok and "the zip is damaged" in result.problems[0]
    assert project.cli("verify", DAY_ONE).code == 1


# ---- restore ------------------------------------------------------------------------------


@pytest.mark.parametrize("given", [DAY_ONE, f"{DAY_ONE}.dmp.zip"])
def test_restore_of_a_legacy_backup_reproduces_the_database_exactly(
    any_project: Project, legacy_source: LegacySource, given: str
) -> None:
    put(any_project, f"{DAY_ONE}.dmp.zip", legacy_source.zip_path.read_bytes())
    any_project.db.stale.insert_one({"gone": True})

    result = any_project.cli("restore", f"{given}:development", "-q")

    assert result.code == 0, result.output
    restored = snapshot(any_project.db)
    assert restored == snapshot(legacy_source.db)
    assert "mongo_migration_history" in restored and "stale" not in restored
    keys = {d["key"] for d in any_project.db.mongo_migration_history.find()}
    assert keys == {"_201611011200_prices_to_cents_migration", "_201611021200_add_index_migration"}


def test_restore_from_the_path_of_a_legacy_zip(
    project: Project, legacy_source: LegacySource
) -> None:
    result = monarch.restore(project.config(), str(legacy_source.zip_path), "development")

    assert result.source == "legacy"
    assert snapshot(project.db) == snapshot(legacy_source.db)


def test_a_legacy_backup_that_is_not_in_the_store_is_not_found(project: Project) -> None:
    with pytest.raises(BackupNotFound, match=r"no legacy backup 'nothing__2016_01_01\.dmp\.zip'"):
        monarch.restore(project.config(), "nothing__2016_01_01", "development")


@pytest.mark.parametrize("how", ["flipped", "truncated", "bad-bson"])
def test_a_failing_restore_of_a_damaged_legacy_backup_leaves_the_target_unchanged(
    project: Project, legacy_source: LegacySource, how: str
) -> None:
    bad = damaged(legacy_source.zip_path, project.root / "bad.zip", how)
    put(project, f"{DAY_ONE}.dmp.zip", bad.read_bytes())
    project.db.users.insert_many([{"_id": i, "kept": True} for i in range(5)])
    before = snapshot(project.db)

    with pytest.raises(ArchiveError) as caught:
        monarch.restore(project.config(), DAY_ONE, "development")

    assert snapshot(project.db) == before
    assert f"the legacy backup {DAY_ONE}" in str(caught.value)


def test_a_legacy_backup_larger_than_the_restore_size_limit_is_refused_before_reading(
    project: Project, legacy_source: LegacySource
) -> None:
    put(project, f"{DAY_ONE}.dmp.zip", legacy_source.zip_path.read_bytes())
    project.db.users.insert_one({"_id": 1, "kept": True})
    before = snapshot(project.db)

    with pytest.raises(SizeLimitExceeded, match="--max-size") as caught:
        monarch.restore(project.config(), DAY_ONE, "development", max_size="10K")

    assert "bytes uncompressed, more than the restore size limit" in str(caught.value)
    assert snapshot(project.db) == before


def test_restoring_a_legacy_backup_into_a_sqlite_environment_is_refused(
    project: Project, legacy_source: LegacySource
) -> None:
    put(project, f"{DAY_ONE}.dmp.zip", legacy_source.zip_path.read_bytes())
    with project.config_path.open("a") as config:
        config.write('\n[environments.lite]\nurl = "sqlite:///lite.db"\n')

    with pytest.raises(UsageError, match=r"is a backup of monarch 0\.0\.x, a MongoDB dump"):
        monarch.restore(project.config(), DAY_ONE, "lite")

    assert not (project.root / "lite.db").exists()


def test_restore_of_a_legacy_backup_refuses_another_from_db(
    project: Project, legacy_source: LegacySource
) -> None:
    put(project, f"{DAY_ONE}.dmp.zip", legacy_source.zip_path.read_bytes())

    with pytest.raises(UsageError, match="holds one database"):
        monarch.restore(project.config(), DAY_ONE, "development", from_db="other")


# ---- verify -------------------------------------------------------------------------------


def test_verify_passes_on_a_good_legacy_backup(
    any_project: Project, legacy_source: LegacySource
) -> None:
    put(any_project, f"{DAY_ONE}.dmp.zip", legacy_source.zip_path.read_bytes())

    result = monarch.verify(any_project.config(), DAY_ONE)

    assert result.ok, result.problems
    assert result.legacy and result.collections == 5
    assert result.documents == 300 + 500 + 100 + 2
    cli = any_project.cli("verify", f"{DAY_ONE}.dmp.zip")
    assert cli.code == 0 and "are intact" in cli.stdout, cli.output


@pytest.mark.parametrize(("how", "says"), [
    ("flipped", "member users.bson: the zip is damaged"),
    ("truncated", "the zip is damaged"),
    ("bad-bson", "member users.bson"),
])
def test_verify_fails_clearly_on_a_damaged_legacy_backup(
    project: Project, legacy_source: LegacySource, how: str, says: str
) -> None:
    bad = damaged(legacy_source.zip_path, project.root / "bad.zip", how)
    put(project, f"{DAY_ONE}.dmp.zip", bad.read_bytes())

    result = monarch.verify(project.config(), DAY_ONE)

    assert not result.ok
    assert says in result.problems[0], result.problems
    assert f"the legacy backup {DAY_ONE}" in result.problems[0]


def test_check_zip_dump_raises_only_archive_errors_on_every_truncation(
    legacy_source: LegacySource, tmp_path: Path
) -> None:
    data = legacy_source.zip_path.read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 200)):
        path = tmp_path / "cut.zip"
        path.write_bytes(data[:cut])
        with pytest.raises(ArchiveError):
            check_zip_dump(path)
    assert check_zip_dump(legacy_source.zip_path).collections == 5


def test_a_zip_declaring_more_than_deflate_can_reach_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.dmp.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("users.bson", bson.encode({"a": 1}))
    data = bytearray(path.read_bytes())
    # Forge the central directory's uncompressed size of the member.
    central = data.rindex(b"PK\x01\x02")
    data[central + 24: central + 28] = (1 << 31).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    with pytest.raises(ArchiveError, match="declares 2,147,483,648 bytes"):
        check_zip_dump(path)
    with pytest.raises(ArchiveError, match="more than the size limit given"):
        check_zip_dump(_small_zip(tmp_path), max_size=10)


def test_a_zip_with_a_nameless_member_and_no_collections_is_refused_clearly() -> None:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"x")
    data.seek(0)

    with pytest.raises(ArchiveError, match="holds no collections"):
        check_zip_dump(data)

def _small_zip(tmp_path: Path) -> Path:
    path = tmp_path / "small.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("users.bson", bson.encode({"a": "x" * 100}))
    return path


# ---- delete and prune ---------------------------------------------------------------------


def test_prune_leaves_legacy_backups_alone_and_delete_backup_removes_one(
    any_project: Project, legacy_source: LegacySource
) -> None:
    two_legacy_and_one_backup(any_project, legacy_source.zip_path.read_bytes())

    pruned = monarch.prune(any_project.config(), keep_last=1)
    cli = any_project.cli("prune", "--keep-last", "1")
    deleted = monarch.delete_backup(any_project.config(), f"{DAY_ONE}.dmp.zip")

    assert set(pruned.legacy) == {DAY_ONE, DAY_ONE_SECOND}
    assert "Left 2 legacy backup(s)" in cli.stdout, cli.output
    assert deleted.keys == (f"{DAY_ONE}.dmp.zip",)
    assert f"{DAY_ONE_SECOND}.dmp.zip" in any_project.store_keys()
    assert f"{DAY_ONE}.dmp.zip" not in any_project.store_keys()
    with pytest.raises(BackupNotFound):
        monarch.delete_backup(any_project.config(), DAY_ONE)

