"""Immutable backups: ``retain_days`` writes archive and manifest under S3 Object Lock, and
prune and delete_backup leave a locked backup whole, saying until when.

Run on every S3 test server whose buckets take Object Lock (``s3_locked_bucket`` skips, naming
the feature, on one that cannot); the retention is read back from the server itself.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import monarch
from monarch.backups.manifest import ArchiveEntry, Manifest
from monarch.backups.naming import make_name
from monarch.backups.retention import RetentionPolicy, retention_policy
from monarch.config import Config, StoreConfig, load_config
from monarch.errors import BackupLocked, ConfigError, StoreError
from monarch.stores import open_store
from monarch.stores.base import ObjectLocked, Retention, Store
from tests.backups.conftest import CliResult, run_cli
from tests.servers import S3Bucket, S3Server

MiB = 1 << 20


def write_project(root: Path, backups: dict[str, object]) -> Path:
    """A project whose one environment, ``lite``, is a small SQLite database."""
    db = sqlite3.connect(root / "lite.db")
    with db:
        db.execute("create table t (id integer primary key, name text)")
        db.executemany("insert into t (name) values (?)", [(f"row {i}",) for i in range(50)])
    db.close()
    lines = ["[backups]"] + [f"{k} = {json.dumps(v)}" for k, v in backups.items()]
    lines += ["", "[environments.lite]", 'url = "sqlite:///lite.db"', ""]
    path = root / "monarch.toml"
    path.write_text("\n".join(lines))
    return path


def bucket_options(bucket: S3Bucket, **more: object) -> dict[str, object]:
    return {"url": bucket.url, "endpoint_url": bucket.endpoint_url, "region": "us-east-1",
            **more}


def cli(config_path: Path, *args: str) -> CliResult:
    """Run ``monarch`` in this process, through its real entry point."""
    return run_cli(config_path, *args)


def head_lock(bucket: S3Bucket, key: str) -> tuple[str, datetime]:
    head = bucket.client.head_object(Bucket=bucket.name, Key=f"backups/{key}")
    return head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]


def fake_backup(store: Store, env: str, created: datetime,
                retention: Retention | None) -> str:
    """A synthetic backup (manifest and small archive) written under ``retention``."""
    name = make_name(env, created)
    key = f"{name}.archive.zst"
    with store.writer(key, retention=retention) as upload:
        upload.write(b"archive of " + name.encode())
    manifest = Manifest(
        name=name, monarch_version="test", environment=env, engine="sqlite", database="lite.db",
        source_host="", server_version="3", started_at=created,
        finished_at=created + timedelta(seconds=5), archive=ArchiveEntry(key, "zstd", 20,
                                                                         "0" * 64, 100),
        collections=(),
    )
    with store.writer(f"{name}.manifest.json", retention=retention) as upload:
        upload.write(manifest.to_json().encode())
    return name


@pytest.fixture
def locked_project(tmp_path: Path, s3_locked_bucket: S3Bucket) -> tuple[Path, S3Bucket]:
    path = write_project(tmp_path, bucket_options(s3_locked_bucket, retain_days=2,
                                                  lock_mode="governance"))
    return path, s3_locked_bucket


def test_a_backup_is_written_locked_archive_and_manifest_alike(
    locked_project: tuple[Path, S3Bucket],
) -> None:
    path, bucket = locked_project
    result = monarch.backup(load_config(path), "lite")

    assert result.retention is not None and result.retention.mode == "governance"
    expected = result.retention.until
    # Two days from the start, rounded up to the second (S3 keeps whole seconds).
    assert timedelta(0) <= expected - (result.started_at + timedelta(days=2)) < timedelta(seconds=1)
    store = open_store(load_config(path).backups)
    for key in (result.archive_key, result.manifest_key):
        assert head_lock(bucket, key) == ("GOVERNANCE", expected)
        assert store.retention(key) == Retention("governance", expected)


def test_compliance_mode_is_written_and_read_back_from_the_server(
    tmp_path: Path, s3_server: S3Server, s3_locked_bucket: S3Bucket,
) -> None:
    path = write_project(tmp_path, bucket_options(s3_locked_bucket, retain_days=1,
                                                  lock_mode="compliance"))
    done = cli(path, "backup", "lite", "--json")
    assert done.code == 0, done.output
    shown = json.loads(done.stdout)
    assert shown["lock_mode"] == "compliance"
    manifest_key = f"{shown['name']}.manifest.json"
    assert head_lock(s3_locked_bucket, manifest_key)[0] == "COMPLIANCE"
    if s3_server.kind != "moto":  # moto fails GetObjectRetention (see tests/stores/test_s3.py)
        answer = s3_locked_bucket.client.get_object_retention(
            Bucket=s3_locked_bucket.name, Key=f"backups/{manifest_key}")
        assert answer["Retention"]["Mode"] == "COMPLIANCE"
        assert answer["Retention"]["RetainUntilDate"].isoformat()[:19] == \
            shown["locked_until"][:19]


def test_a_big_archive_sent_in_parts_is_locked_too(
    s3_server: S3Server, s3_locked_bucket: S3Bucket,
) -> None:
    if s3_server.kind == "moto":
        pytest.skip("moto drops the Object Lock retention given to CreateMultipartUpload")
    store = open_store(load_store_config(s3_locked_bucket, part_size="5MiB"))
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    with store.writer("big", retention=Retention("governance", until)) as upload:
        upload.write(b"x" * (6 * MiB))  # two parts: a multipart upload
    assert head_lock(s3_locked_bucket, "big") == ("GOVERNANCE", until)
    assert store.retention("big") == Retention("governance", until)


def load_store_config(bucket: S3Bucket, **options: str) -> StoreConfig:
    return StoreConfig(
        bucket.url, {"endpoint_url": bucket.endpoint_url, "region": "us-east-1", **options})


def test_the_store_refuses_to_delete_a_locked_object_and_keeps_it(
    s3_locked_bucket: S3Bucket,
) -> None:
    store = open_store(load_store_config(s3_locked_bucket))
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    with store.writer("locked", retention=Retention("governance", until)) as upload:
        upload.write(b"kept")
    with pytest.raises(ObjectLocked, match="locked until") as refused:
        store.delete("locked")
    assert refused.value.retention.until == until
    # No delete marker hides it: it is still the current object, listed and readable.
    assert [o.key for o in store.list()] == ["locked"]
    with store.reader("locked") as stream:
        assert stream.read() == b"kept"


def test_prune_leaves_a_locked_backup_whole_and_says_until_when(
    locked_project: tuple[Path, S3Bucket],
) -> None:
    path, _ = locked_project
    config = load_config(path)
    old = monarch.backup(config, "lite")
    new = monarch.backup(config, "lite")

    result = monarch.prune(config, keep_last=1)

    assert [b.name for b in result.removed] == []
    assert [(item.backup.name, item.until) for item in result.locked] == \
        [(old.name, old.retention.until if old.retention else None)]
    assert [b.name for b in monarch.list_backups(config)] == [old.name, new.name]
    assert monarch.verify(config, old.name).ok  # whole: manifest and archive untouched

    text = cli(path, "prune", "--keep-last", "1")
    assert text.code == 0, text.output
    day = f"{old.retention.until:%Y-%m-%d}" if old.retention else "?"
    assert f"locked  {old.name}  (cannot be deleted until {day}" in text.stdout
    assert "1 locked backup(s) left until their retention ends" in text.stdout
    shown = json.loads(cli(path, "prune", "--keep-last", "1", "--dry-run", "--json").stdout)
    assert shown["removed"] == []
    assert shown["locked"] == [{"name": old.name, "mode": "governance",
                                "until": old.retention.until.isoformat()
                                if old.retention else None}]


def test_delete_backup_refuses_a_locked_backup_and_deletes_nothing(
    locked_project: tuple[Path, S3Bucket],
) -> None:
    path, _ = locked_project
    config = load_config(path)
    done = monarch.backup(config, "lite")
    assert done.retention is not None

    with pytest.raises(BackupLocked, match="locked until") as refused:
        monarch.delete_backup(config, done.name)
    assert refused.value.until == done.retention.until
    assert refused.value.mode == "governance"

    text = cli(path, "delete_backup", done.name)
    assert text.code == 1
    assert f"is locked until {done.retention.until:%Y-%m-%d %H:%M:%S} UTC" in text.stderr
    assert "nothing was deleted" in text.stderr
    assert [b.name for b in monarch.list_backups(config)] == [done.name]
    assert monarch.verify(config, done.name).ok


def test_a_backup_whose_retention_has_ended_is_pruned(
    tmp_path: Path, s3_locked_bucket: S3Bucket,
) -> None:
    path = write_project(tmp_path, bucket_options(s3_locked_bucket))
    config = load_config(path)
    store = open_store(config.backups)
    now = datetime.now(UTC)
    soon = Retention("governance", (now + timedelta(seconds=3)).replace(microsecond=0))
    later = Retention("governance", (now + timedelta(days=1)).replace(microsecond=0))
    ended = fake_backup(store, "lite", now - timedelta(hours=3), soon)
    held = fake_backup(store, "lite", now - timedelta(hours=2), later)
    newest = fake_backup(store, "lite", now - timedelta(hours=1), None)
    time.sleep(max(0.0, (soon.until - datetime.now(UTC)).total_seconds()) + 1.5)

    result = monarch.prune(config, keep_last=1)

    assert [b.name for b in result.removed] == [ended]
    assert [item.backup.name for item in result.locked] == [held]
    assert [b.name for b in monarch.list_backups(config)] == [held, newest]


def test_retain_days_on_a_bucket_without_object_lock_is_a_clear_error(
    tmp_path: Path, s3_bucket: S3Bucket,
) -> None:
    path = write_project(tmp_path, bucket_options(s3_bucket, retain_days=1))
    with pytest.raises(StoreError, match="has no Object Lock") as refused:
        monarch.backup(load_config(path), "lite")
    assert "Object Lock" in (refused.value.hint or "")
    assert monarch.list_backups(load_config(path)) == []
    assert list(open_store(load_config(path).backups).list()) == []  # not even the claim


@pytest.mark.parametrize("url", ["file://backups", "memory://locks"])
def test_retain_days_on_a_store_that_cannot_lock_is_a_config_error(
    tmp_path: Path, url: str,
) -> None:
    path = write_project(tmp_path, {"url": url, "retain_days": 30})
    with pytest.raises(ConfigError, match="cannot lock objects") as refused:
        monarch.backup(load_config(path), "lite")
    assert "Object Lock" in (refused.value.hint or "")
    assert monarch.list_backups(load_config(path)) == []
    done = cli(path, "backup", "lite")
    assert done.code == 2 and "cannot lock objects" in done.stderr


def test_a_local_store_refuses_a_retention_before_writing(tmp_path: Path) -> None:
    store = open_store(StoreConfig(f"file://{tmp_path}"))
    assert store.can_lock is False
    with pytest.raises(StoreError, match="cannot lock objects"):
        store.writer("k", retention=Retention("governance", datetime.now(UTC)))
    assert list(store.list()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retain_days": "0"}, "positive number of days"),
        ({"retain_days": "a month"}, "positive number of days"),
        ({"retain_days": "3", "lock_mode": "forever"}, "must be one of governance, compliance"),
        ({"lock_mode": "compliance"}, "retain_days is not"),
    ],
)
def test_retention_settings_are_checked(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        retention_policy(options)


def test_retention_settings_read_from_toml(tmp_path: Path) -> None:
    path = write_project(tmp_path, {"url": "file://b", "retain_days": 30,
                                    "lock_mode": "COMPLIANCE"})
    config: Config = load_config(path)
    assert retention_policy(config.backups.options) == RetentionPolicy(30, "compliance")
    assert retention_policy({}) is None


def test_copy_db_keeps_its_backup_locked_too(locked_project: tuple[Path, S3Bucket]) -> None:
    path, bucket = locked_project
    path.write_text(path.read_text() + '\n[environments.twin]\nurl = "sqlite:///twin.db"\n')
    config = load_config(path)
    monarch.copy_db(config, "lite", "twin", keep_backup=True)
    (kept,) = monarch.list_backups(config, "lite")
    mode, until = head_lock(bucket, f"{kept.name}.manifest.json")
    assert mode == "GOVERNANCE" and until > datetime.now(UTC) + timedelta(days=1, hours=23)
    with pytest.raises(BackupLocked):
        monarch.delete_backup(config, kept.name)
