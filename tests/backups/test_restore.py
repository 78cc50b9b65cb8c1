"""restore(): the target ends up holding exactly the backup, through staging and a swap."""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from pymongo.errors import PyMongoError

from monarch import backup, restore
from monarch.api.backups import recover
from monarch.backups.restore import RestoreResult
from monarch.config import load_config
from monarch.errors import BackupNotFound, ConfirmationRequired, UsageError
from monarch.progress import Item, Summary
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    data_collections,
    dump_with_writer,
    leftovers,
    seed,
    snapshot,
    two_dbs_fixture,
)


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_backup_restored_into_another_database_has_identical_documents_and_indexes(
    two_dbs: TwoDbs, compression: str
) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    made = backup(config, "development", compression=compression)

    result = restore(config, made.name, "staging")

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    assert isinstance(result, RestoreResult)
    assert result.source == "backup" and result.environment == "staging"
    assert result.documents == 300 + 500 + 100
    assert sorted(c.name for c in result.collections) == ["empty", "notes", "orders", "users"]


def test_restore_removes_collections_that_are_not_in_the_backup(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    made = backup(config, "development")
    two_dbs.target.stale.insert_many([{"old": i} for i in range(10)])
    two_dbs.target.create_collection("also_stale")

    result = restore(config, made.name, "staging")

    assert data_collections(two_dbs.target) == ["empty", "notes", "orders", "users"]
    assert sorted(result.dropped) == ["also_stale", "stale"]


def test_restore_into_a_non_empty_target_replaces_it_exactly(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    made = backup(config, "development")
    # Same collection names, overlapping _ids, other data and another index: all must go.
    seed(two_dbs.target, seed_value=99)
    two_dbs.target.users.insert_one({"_id": "only-in-target"})
    two_dbs.target.users.create_index("name", name="name_1")
    two_dbs.target.orders.delete_many({})

    restore(config, made.name, "staging")

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_restore_of_an_empty_database_backup_empties_the_target(two_dbs: TwoDbs) -> None:
    config = two_dbs.config()
    made = backup(config, "development")
    seed(two_dbs.target)

    result = restore(config, made.name, "staging")

    assert data_collections(two_dbs.target) == []
    assert result.collections == ()


def test_restore_leaves_no_staging_aside_or_journal_collections(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=3)
    config = two_dbs.config()

    restore(config, backup(config, "development").name, "staging")

    assert leftovers(two_dbs.target) == []


def test_restore_twice_in_a_row_gives_the_same_result(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    name = backup(config, "development").name

    restore(config, name, "staging")
    first = snapshot(two_dbs.target)
    restore(config, name, "staging")

    assert snapshot(two_dbs.target) == first == snapshot(two_dbs.source)


def test_restore_brings_back_the_backups_migration_history_and_keeps_the_targets_lock(
    two_dbs: TwoDbs,
) -> None:
    two_dbs.source.monarch_migrations.insert_one({"_id": "0001_first", "state": "applied"})
    config = two_dbs.config()
    made = backup(config, "development")
    two_dbs.target.monarch_migrations.insert_one({"_id": "0002_bad", "state": "applied"})
    two_dbs.target.monarch_lock.insert_one({"_id": "migrate:000000000001", "lock": "migrate"})

    restore(config, made.name, "staging")

    assert [d["_id"] for d in two_dbs.target.monarch_migrations.find()] == ["0001_first"]
    # The lock is the environment's: not taken from the backup, not removed by the swap.
    assert two_dbs.target.monarch_lock.find_one({"_id": "migrate:000000000001"}) is not None


def test_restore_keeps_capped_collection_options(two_dbs: TwoDbs) -> None:
    two_dbs.source.create_collection("events", capped=True, size=1_000_000, max=50)
    two_dbs.source.events.insert_many([{"n": i} for i in range(20)])
    config = two_dbs.config()

    restore(config, backup(config, "development").name, "staging")

    options = two_dbs.target.events.options()
    assert options.get("capped") is True and options.get("max") == 50
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_restore_with_several_insertion_workers_gives_the_same_result(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source, scale=3)
    config = two_dbs.config()

    restore(config, backup(config, "development").name, "staging", workers=4)

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_restore_into_a_protected_environment_needs_its_name_and_touches_nothing_without(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=5)
    config = two_dbs.config()
    name = backup(config, "development").name
    before = snapshot(two_dbs.target)

    with pytest.raises(ConfirmationRequired, match="production"):
        restore(config, name, "production")
    with pytest.raises(ConfirmationRequired, match="does not match"):
        restore(config, name, "production", confirm="staging")
    assert snapshot(two_dbs.target) == before

    restore(config, name, "production", confirm="production")
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_restore_of_an_unknown_backup_is_not_found_and_touches_nothing(
    two_dbs: TwoDbs, tmp_path: Path
) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)
    config = two_dbs.config()

    with pytest.raises(BackupNotFound, match="development-20200101T000000Z"):
        restore(config, "development-20200101T000000Z", "staging")
    with pytest.raises(BackupNotFound, match="neither a backup name nor"):
        restore(config, str(tmp_path / "no-such-dump.archive"), "staging")
    assert snapshot(two_dbs.target) == before


def test_from_db_must_name_the_database_of_a_monarch_backup(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    name = backup(config, "development").name

    with pytest.raises(UsageError, match="holds only database"):
        restore(config, name, "staging", from_db="elsewhere")
    restore(config, name, "staging", from_db=two_dbs.source.name)

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


class Recorder:
    """A progress renderer that remembers every call."""

    def __init__(self) -> None:
        self.started: list[tuple[str, list[Item]]] = []
        self.documents: dict[str, int] = {}
        self.finished_items: list[str] = []
        self.summaries: list[Summary | None] = []

    def start(self, action: str, items: Any) -> None:
        self.started.append((action, list(items)))

    def advance(self, item: str, documents: int, size: int) -> None:
        self.documents[item] = self.documents.get(item, 0) + documents

    def finish_item(self, item: str) -> None:
        self.finished_items.append(item)

    def finish(self, summary: Summary | None) -> None:
        self.summaries.append(summary)


def test_restore_reports_progress_with_the_manifests_counts_and_a_summary(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    name = backup(config, "development").name
    progress = Recorder()

    restore(config, name, "staging", progress=progress)

    [(action, items)] = progress.started
    assert action == "restore"
    assert {i.name: i.documents for i in items} == {
        "empty": 0, "notes": 100, "orders": 500, "users": 300}
    assert progress.documents == {"notes": 100, "orders": 500, "users": 300}
    assert sorted(progress.finished_items) == ["empty", "notes", "orders", "users"]
    [summary] = progress.summaries
    assert summary is not None and summary.documents == 900 and summary.items == 4


def test_recover_with_nothing_pending_says_so_and_changes_nothing(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)

    assert recover(two_dbs.config(), "staging") is None

    assert snapshot(two_dbs.target) == before


def test_a_mongodump_archive_restores_only_into_a_mongodb_environment(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    dump = dump_with_writer(two_dbs.source, two_dbs.root / "dump.archive")
    path = two_dbs.config_path
    path.write_text(path.read_text() + '\n[environments.reports]\nurl = "sqlite:///reports.db"\n')

    with pytest.raises(UsageError, match="restores into a MongoDB environment"):
        restore(load_config(path), str(dump), "reports")


def test_an_archive_written_with_archive_writer_alone_restores_exactly(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    dump = dump_with_writer(two_dbs.source, two_dbs.root / "dump.archive.gz", compression="gzip")

    result = restore(two_dbs.config(), str(dump), "staging")

    assert result.source == "archive"
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def every_bson_value() -> list[dict[str, Any]]:
    """One document per BSON type (and edge value) that a server might store."""
    values: list[Any] = [
        None, True, False, 0, -(2**31), 2**31 - 1, Int64(2**62), Int64(-(2**63)), 1.5, -0.0,
        1e308, "", "ünïcødé ✓", "x" * 10_000, ObjectId(), Binary(b"\x00\xff" * 10),
        Binary(b"\x01" * 16, 4), Binary(uuid.uuid4().bytes, 3), Binary(b"md5md5md5md5md5m", 5),
        Binary(b"custom", 0x80), datetime.datetime(1901, 12, 13, 20, 45, 52),
        datetime.datetime(2262, 4, 11, 23, 47, 16, 854000), datetime.datetime(1970, 1, 1),
        Regex("^a.*b$", "im"), Timestamp(1_700_000_000, 7), Decimal128("1234.5678"), MinKey(),
        MaxKey(), Code("function () { return 1; }"), {"nested": {"deeper": {"deepest": [1, 2]}}},
        [1, "two", {"three": 3}], [],
    ]
    return [{"_id": i, "v": value} for i, value in enumerate(values)]


def test_every_value_the_server_stores_round_trips_byte_for_byte(two_dbs: TwoDbs) -> None:
    kept = 0
    for doc in every_bson_value():
        try:
            two_dbs.source.values.insert_one(doc)
            kept += 1
        except PyMongoError:
            continue  # a type this server cannot store (FerretDB: Decimal128, MinKey, code...)
    assert kept >= 20
    config = two_dbs.config()

    restore(config, backup(config, "development", compression="gzip").name, "staging")

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    assert two_dbs.target.values.count_documents({}) == kept


def test_documents_near_the_16_mb_limit_round_trip(two_dbs: TwoDbs) -> None:
    big = 16 * 1024 * 1024 - 1024
    two_dbs.source.big.insert_many([{"_id": i, "blob": "x" * big} for i in range(3)])
    two_dbs.source.big.insert_one({"_id": "small"})
    config = two_dbs.config()

    result = restore(config, backup(config, "development").name, "staging")

    assert result.documents == 4
    assert snapshot(two_dbs.target, batch_size=1) == snapshot(two_dbs.source, batch_size=1)


def test_restoring_a_backup_into_its_own_environment_undoes_everything_since(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    made = backup(config, "development")
    at_backup = snapshot(two_dbs.source)
    two_dbs.source.users.update_many({}, {"$set": {"migrated": True}})
    two_dbs.source.users.create_index("name", name="name_1")
    two_dbs.source.drop_collection("notes")
    two_dbs.source.brand_new.insert_one({})

    restore(config, made.name, "development")

    assert snapshot(two_dbs.source) == at_backup
