"""list_backups(): complete backups only, from manifests alone, oldest first."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monarch import backup, list_backups
from monarch.backups.catalog import read_manifest
from monarch.config import config_from_dict
from monarch.errors import ConfigError, ManifestError
from tests.backups.conftest import Project
from tests.servers.ports import free_port


def test_backups_are_listed_oldest_first_with_their_labels(shop: Project) -> None:
    config = shop.config()
    first = backup(config, "development", label="a")
    second = backup(config, "production", label="b")
    third = backup(config, "development", label="c")

    listed = list_backups(config)

    assert [b.name for b in listed] == [first.name, second.name, third.name]
    assert [b.label for b in listed] == ["a", "b", "c"]
    assert [b.environment for b in listed] == ["development", "production", "development"]


def test_listing_one_environment(shop: Project) -> None:
    config = shop.config()
    backup(config, "development")
    prod = backup(config, "production")

    assert [b.name for b in list_backups(config, "production")] == [prod.name]


def test_listing_an_unknown_environment_is_an_error(project: Project) -> None:
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        list_backups(project.config(), "prod")


def test_listing_needs_no_database(shop: Project, tmp_path: Path) -> None:
    backup(shop.config(), "development")
    dead = f"mongodb://127.0.0.1:{free_port()}/gone"
    offline = config_from_dict(
        {"backups": f"file://{shop.root / 'backups'}",
         "environments": {"development": {"url": dead}}},
        None, {}, root=tmp_path,
    )

    [listed] = list_backups(offline)

    assert listed.environment == "development" and listed.documents == 1000


def test_an_archive_without_manifest_is_not_listed(shop: Project) -> None:
    result = backup(shop.config(), "development")
    shop.store().delete(result.manifest_key)

    assert list_backups(shop.config()) == []


def test_an_unreadable_manifest_is_skipped_with_a_warning(
    shop: Project, caplog: pytest.LogCaptureFixture
) -> None:
    good = backup(shop.config(), "development")
    bad = backup(shop.config(), "development", label="bad")
    store = shop.store()
    store.delete(bad.manifest_key)
    with store.writer(bad.manifest_key) as upload:
        upload.write(b"{not json")

    with caplog.at_level(logging.WARNING, logger="monarch"):
        listed = list_backups(shop.config())

    assert [b.name for b in listed] == [good.name]
    assert f"skipping backup {bad.name}" in caplog.text


def test_other_files_in_the_store_are_ignored(shop: Project) -> None:
    folder = shop.root / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    (folder / "dump.archive").write_bytes(b"not ours")

    assert list_backups(shop.config()) == []


def test_a_future_manifest_format_is_refused_by_name(shop: Project) -> None:
    result = backup(shop.config(), "development")
    store = shop.store()
    with store.reader(result.manifest_key) as f:
        text = f.read().replace(b'"format_version": 1', b'"format_version": 99')
    store.delete(result.manifest_key)
    with store.writer(result.manifest_key) as upload:
        upload.write(text)

    with pytest.raises(ManifestError, match="format version 99"):
        read_manifest(store, result.name)
