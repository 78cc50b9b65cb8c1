"""prune() and delete_backup(): restic's retention rules, manifest deleted before archive."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monarch import delete_backup, list_backups, prune
from monarch.backups.manifest import ArchiveEntry, Manifest
from monarch.backups.naming import make_name
from monarch.config import Config, config_from_dict
from monarch.errors import BackupNotFound, ConfigError, UsageError
from monarch.stores import open_store
from monarch.stores.memory import MemoryStore

T0 = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    """A config whose store is a fresh in-memory store; environments are never contacted."""
    name = f"prune-{uuid.uuid4().hex[:8]}"
    url = "mongodb://127.0.0.1:1/app"
    yield config_from_dict(
        {"backups": f"memory://{name}",
         "environments": {"production": {"url": url}, "staging": {"url": url},
                          "staging-eu": {"url": url}}},
        None, {}, root=tmp_path,
    )
    MemoryStore.reset(name)


def fake(config: Config, env: str, created: datetime, label: str | None = None) -> str:
    """Store a synthetic backup (a manifest and a small archive) made at ``created``."""
    name = make_name(env, created, label)
    store = open_store(config.backups)
    key = f"{name}.archive.zst"
    with store.writer(key) as upload:
        upload.write(b"archive of " + name.encode())
    manifest = Manifest(
        name=name, monarch_version="test", environment=env, engine="mongo", database="app",
        source_host="db", server_version="7.0", started_at=created,
        finished_at=created + timedelta(seconds=5), label=label,
        archive=ArchiveEntry(key, "zstd", 20, "0" * 64, 100), collections=(),
    )
    with store.writer(f"{name}.manifest.json") as upload:
        upload.write(manifest.to_json().encode())
    return name


def names(config: Config, env: str | None = None) -> list[str]:
    return [b.name for b in list_backups(config, env)]


def every_hour(config: Config, env: str, hours: int) -> list[str]:
    """Backups every 6 hours, oldest first."""
    return [fake(config, env, T0 - timedelta(hours=6 * i)) for i in reversed(range(hours))]


def test_prune_refuses_without_a_rule(config: Config) -> None:
    fake(config, "production", T0)

    with pytest.raises(UsageError, match="at least one rule"):
        prune(config)

    assert len(names(config)) == 1


@pytest.mark.parametrize("bad", [0, -1])
def test_prune_refuses_non_positive_counts(config: Config, bad: int) -> None:
    with pytest.raises(UsageError, match="--keep-last must be a positive number"):
        prune(config, keep_last=bad)


def test_keep_last_keeps_the_newest(config: Config) -> None:
    made = every_hour(config, "production", 10)

    result = prune(config, keep_last=3)

    assert names(config) == made[-3:]
    assert [b.name for b in result.removed] == made[:-3]
    assert all(k.reasons == ("last",) for k in result.kept)


def test_keep_daily_keeps_the_newest_of_each_recent_day(config: Config) -> None:
    made = every_hour(config, "production", 16)  # 4 per day over 4 days

    prune(config, keep_daily=3)

    days = {}
    for name in made:  # oldest first, so the last one per day wins
        days[name.split("-")[1][:8]] = name
    assert names(config) == sorted(days.values())[-3:]


def test_keep_weekly_uses_iso_weeks(config: Config) -> None:
    monday = T0
    made = [
        fake(config, "production", monday - timedelta(days=8)),  # previous week, Sunday
        fake(config, "production", monday - timedelta(days=7)),  # previous week, Monday...
        fake(config, "production", monday - timedelta(days=1)),  # ...and its Sunday: newest
        fake(config, "production", monday),
        fake(config, "production", monday + timedelta(days=3)),
    ]

    prune(config, keep_weekly=2)

    assert names(config) == [made[2], made[4]]


def test_rules_combine_and_say_why_each_backup_is_kept(config: Config) -> None:
    made = every_hour(config, "production", 12)

    result = prune(config, keep_last=2, keep_daily=2)

    reasons = {k.backup.name: k.reasons for k in result.kept}
    assert reasons[made[-1]] == ("last", "daily")
    assert reasons[made[-2]] == ("last",)
    assert len(reasons) == 3  # the newest of yesterday, kept by daily


def test_rules_apply_to_each_environment_separately(config: Config) -> None:
    prod = every_hour(config, "production", 4)
    staging = every_hour(config, "staging", 4)

    prune(config, keep_last=1)

    assert names(config) == sorted([prod[-1], staging[-1]], key=lambda n: n.split("-")[1])


def test_env_restricts_prune_to_one_environment(config: Config) -> None:
    prod = every_hour(config, "production", 4)
    staging = every_hour(config, "staging", 4)

    prune(config, keep_last=1, env="staging")

    assert names(config, "production") == prod
    assert names(config, "staging") == staging[-1:]


def test_env_does_not_reach_environments_whose_names_extend_it(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    config = config_from_dict(
        {"backups": f"file://{folder}",
         "environments": {"staging": {"url": "mongodb://h/a"}, "staging-eu": {"url": "mongodb://h/b"}}},
        None, {}, root=tmp_path,
    )
    eu = [fake(config, "staging-eu", T0 - timedelta(days=d)) for d in (2, 1)]
    folder.joinpath("staging-eu-20260101T000000Z.archive.zst").write_bytes(b"eu orphan")
    hours_ago = time.time() - 7200
    os.utime(folder / "staging-eu-20260101T000000Z.archive.zst", (hours_ago, hours_ago))

    result = prune(config, keep_last=1, env="staging")

    assert result.removed == () and result.orphans == ()
    assert names(config, "staging-eu") == eu
    assert (folder / "staging-eu-20260101T000000Z.archive.zst").exists()


def test_an_unknown_environment_without_backups_is_an_error(config: Config) -> None:
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        prune(config, keep_last=1, env="prod")


def test_dry_run_changes_nothing(config: Config) -> None:
    made = every_hour(config, "production", 6)
    store = open_store(config.backups)
    before = [o.key for o in store.list()]

    result = prune(config, keep_last=2, dry_run=True)

    assert result.dry_run
    assert [b.name for b in result.removed] == made[:-2]
    assert [o.key for o in store.list()] == before


def test_prune_removes_old_orphans_and_keeps_recent_ones(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    config = config_from_dict(
        {"backups": f"file://{folder}", "environments": {"production": {"url": "mongodb://h/a"}}},
        None, {}, root=tmp_path,
    )
    kept = fake(config, "production", T0)
    folder.joinpath("production-20260101T000000Z.archive.zst").write_bytes(b"old orphan")
    folder.joinpath("production-20260102T000000Z.archive.gz").write_bytes(b"new orphan")
    folder.joinpath(".tmp-production-x.archive.zst-abc").write_bytes(b"old upload")
    hours_ago = time.time() - 7200
    for path in ("production-20260101T000000Z.archive.zst", ".tmp-production-x.archive.zst-abc"):
        os.utime(folder / path, (hours_ago, hours_ago))

    result = prune(config, keep_last=5)

    assert result.orphans == ("production-20260101T000000Z.archive.zst",)
    assert result.leftovers == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{kept}.archive.zst", f"{kept}.manifest.json",
         "production-20260102T000000Z.archive.gz"])


def test_delete_backup_removes_manifest_then_archive(config: Config) -> None:
    name = fake(config, "production", T0)
    other = fake(config, "production", T0 + timedelta(hours=1))

    result = delete_backup(config, name)

    assert result.keys == (f"{name}.manifest.json", f"{name}.archive.zst")
    assert result.was_complete
    assert names(config) == [other]
    assert [o.key for o in open_store(config.backups).list()] == [
        f"{other}.archive.zst", f"{other}.manifest.json"]


def test_a_delete_interrupted_after_the_manifest_can_be_finished(config: Config) -> None:
    name = fake(config, "production", T0)
    open_store(config.backups).delete(f"{name}.manifest.json")  # the first half of a delete

    assert names(config) == []  # the backup no longer exists...
    result = delete_backup(config, name)  # ...and the leftover archive is removed

    assert not result.was_complete and result.keys == (f"{name}.archive.zst",)
    assert list(open_store(config.backups).list()) == []


def test_a_backup_whose_manifest_is_not_json_can_still_be_deleted(config: Config) -> None:
    name = fake(config, "production", T0)
    other = fake(config, "production", T0 + timedelta(hours=1))
    store = open_store(config.backups)
    with store.writer(f"{name}.manifest.json") as upload:
        upload.write(b'{"name": "cut off')

    result = delete_backup(config, name)

    assert result.keys == (f"{name}.manifest.json", f"{name}.archive.zst")
    assert [o.key for o in store.list()] == [f"{other}.archive.zst", f"{other}.manifest.json"]


def test_a_name_claim_left_by_a_killed_backup_is_removed_by_prune(config: Config) -> None:
    kept = fake(config, "production", T0)
    store = open_store(config.backups)
    with store.writer("production-20260101T000000Z.claim") as upload:
        upload.write(b"token")

    result = prune(config, keep_last=1, leftover_age=0)

    assert result.orphans == ("production-20260101T000000Z.claim",)
    assert [o.key for o in store.list()] == [f"{kept}.archive.zst", f"{kept}.manifest.json"]


def test_deleting_an_unknown_backup_is_not_found(config: Config) -> None:
    name = fake(config, "production", T0)

    with pytest.raises(BackupNotFound) as info:
        delete_backup(config, name.replace("T230000Z", "T230001Z"))

    assert info.value.hint == f"did you mean {name!r}?"
