"""backup(): one archive plus one manifest in the store, faithful to the database."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from monarch import backup, list_backups
from monarch.archive import crc64, sniff
from monarch.backups.naming import parse_name
from monarch.errors import ConfigError, UsageError
from tests.backups.conftest import Project, seed_shop
from tests.backups.helpers import read_archive, server_documents


def test_backup_then_list_shows_it_with_its_counts(any_project: Project) -> None:
    seed_shop(any_project.db, users=120, orders=80)
    config = any_project.config()

    result = backup(config, "development")

    [listed] = list_backups(config)
    assert listed.name == result.name
    assert listed.environment == "development"
    assert listed.collections == 4  # users, orders, logs, empty
    assert listed.documents == 120 + 80 + 200
    assert listed.size == result.size > 0
    assert sorted(any_project.store_keys()) == [
        f"{result.name}.archive.gz", f"{result.name}.manifest.json"]


def test_backup_name_is_environment_utc_time_and_label(shop: Project) -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    result = backup(shop.config(), "development", label="pre-migrate")

    parsed = parse_name(result.name)
    assert parsed is not None
    assert re.fullmatch(r"development-\d{8}T\d{6}Z-pre-migrate", result.name)
    assert parsed.environment == "development" and parsed.label == "pre-migrate"
    assert before <= parsed.created <= datetime.now(UTC)


def test_two_backups_in_the_same_second_get_different_names(shop: Project) -> None:
    config = shop.config()

    names = {backup(config, "development", label="x").name for _ in range(3)}

    assert len(names) == 3
    assert len(list_backups(config)) == 3


def test_manifest_describes_source_archive_and_each_collection(shop: Project) -> None:
    result = backup(shop.config(), "development")
    m = result.manifest

    assert m.environment == "development" and m.database == shop.db.name
    assert m.source_host == shop.url.split("//")[1].split("/")[0]
    assert m.server_version and m.monarch_version
    assert m.started_at <= m.finished_at and m.duration >= 0
    assert m.archive.compression == "gzip"  # the default
    assert m.archive.key == f"{result.name}.archive.gz"
    assert len(m.archive.sha256) == 64
    by_name = {c.name: c for c in m.collections}
    assert sorted(by_name) == ["empty", "logs", "orders", "users"]
    users = by_name["users"]
    raw = server_documents(shop.db, "users")
    assert users.documents == len(raw) == 300
    assert users.bytes == sum(len(d) for d in raw)
    assert {i["name"] for i in users.indexes} == {"_id_", "email_1"}
    assert next(i for i in users.indexes if i["name"] == "email_1")["unique"] is True
    assert by_name["empty"].documents == 0 and by_name["empty"].crc64 == 0


def test_manifest_json_is_stable_and_complete(shop: Project) -> None:
    result = backup(shop.config(), "development", label="nightly")
    with shop.store().reader(f"{result.name}.manifest.json") as f:
        doc: dict[str, Any] = json.load(f)

    assert doc["format"] == "monarch-backup" and doc["format_version"] == 1
    assert doc["label"] == "nightly" and doc["query_set"] is None
    assert doc["totals"] == {"collections": 4, "documents": 1000, "bytes": result.data_bytes}
    assert set(doc["archive"]) >= {"key", "compression", "size", "sha256", "uncompressed_size"}
    assert set(doc["collections"][0]) >= {"name", "type", "documents", "bytes", "crc64",
                                          "indexes", "options"}


def test_archive_holds_exactly_the_servers_documents_with_matching_crcs(shop: Project) -> None:
    result = backup(shop.config(), "development")

    contents = read_archive(shop.store(), result.archive_key)

    assert contents.header["tool_version"].startswith("monarch ")
    for entry in result.manifest.collections:
        docs = contents.documents.get(entry.name, [])
        assert sorted(docs) == server_documents(shop.db, entry.name)
        end = contents.ends[entry.name]
        assert end.crc == entry.crc64 == crc64(b"".join(docs))
        assert end.documents == entry.documents


def test_archive_metadata_carries_indexes_and_options(shop: Project) -> None:
    shop.db.create_collection("capped_log", capped=True, size=65536, max=100)

    result = backup(shop.config(), "development")

    meta = read_archive(shop.store(), result.archive_key).collections
    assert {i["name"] for i in meta["orders"].indexes} == {"_id_", "user_total"}
    assert meta["capped_log"].options.get("capped") is True
    assert meta["capped_log"].type == "collection"


@pytest.mark.parametrize(("compression", "suffix"),
                         [("zstd", ".zst"), ("gzip", ".gz"), ("none", "")])
def test_every_compression_gives_a_readable_archive(
    shop: Project, compression: str, suffix: str
) -> None:
    result = backup(shop.config(), "development", compression=compression)

    assert result.archive_key == f"{result.name}.archive{suffix}"
    assert result.manifest.archive.compression == compression
    with shop.store().reader(result.archive_key) as f:
        head = f.read(4)
    assert sniff(head) == (None if compression == "none" else compression)
    contents = read_archive(shop.store(), result.archive_key)
    assert sum(e.documents for e in contents.ends.values()) == 1000


def test_store_compression_option_sets_the_default(shop: Project) -> None:
    text = shop.config_path.read_text().replace("[backups]\n", '[backups]\ncompression = "zstd"\n')
    shop.config_path.write_text(text)

    result = backup(shop.config(), "development")

    assert result.manifest.archive.compression == "zstd"


def test_monarch_bookkeeping_is_left_out_but_migration_history_is_kept(project: Project) -> None:
    db = project.db
    db.data.insert_one({"x": 1})
    db.monarch_migrations.insert_one({"_id": "20260101_first", "state": "applied"})
    db.monarch_lock.insert_one({"_id": "migrate"})
    db.monarch_staging_abc_data.insert_one({"x": 2})
    db.monarch_aside_abc_data.insert_one({"x": 3})

    result = backup(project.config(), "development")

    assert sorted(c.name for c in result.manifest.collections) == ["data", "monarch_migrations"]


def test_an_empty_database_backs_up_to_a_valid_empty_archive(project: Project) -> None:
    result = backup(project.config(), "development")

    assert result.manifest.collections == ()
    contents = read_archive(project.store(), result.archive_key)
    assert contents.collections == {} and contents.ends == {}


@pytest.mark.parametrize("label", ["", "has space", "a/b", "-lead", "x" * 65, "trail."])
def test_invalid_label_is_refused_before_anything_is_written(project: Project, label: str) -> None:
    with pytest.raises(UsageError, match="invalid backup label"):
        backup(project.config(), "development", label=label)

    assert project.store_keys() == []


def test_unknown_environment_is_a_config_error(project: Project) -> None:
    with pytest.raises(ConfigError, match="unknown environment 'staging'"):
        backup(project.config(), "staging")


def test_unknown_compression_is_refused(project: Project) -> None:
    with pytest.raises(UsageError, match="unknown compression 'lz4'"):
        backup(project.config(), "development", compression="lz4")


def test_single_reader_thread_gives_the_same_data(shop: Project) -> None:
    one = backup(shop.config(), "development", parallel=1).manifest
    four = backup(shop.config(), "development", parallel=4).manifest

    assert [(c.name, c.documents, c.bytes) for c in one.collections] == [
        (c.name, c.documents, c.bytes) for c in four.collections]
