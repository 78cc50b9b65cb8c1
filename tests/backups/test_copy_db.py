"""copy_db(): the target becomes exactly the source (or its query-set view), streamed, with the
restore's staging and swap; it refuses to copy a database onto itself."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monarch import copy_db, list_backups, list_history, restore, verify
from monarch.backups.copy import CopyResult
from monarch.cli.render.backups import text
from monarch.config import load_config
from monarch.errors import ConfirmationRequired, QuerySetError, UsageError
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    data_collections,
    leftovers,
    seed,
    snapshot,
    two_dbs_fixture,
)


def test_copy_db_makes_the_target_identical_to_the_source(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source, scale=2)
    seed(two_dbs.target, seed_value=42)
    two_dbs.target.stale.insert_one({"gone": True})

    result = copy_db(two_dbs.config(), "development", "staging")

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    assert leftovers(two_dbs.target) == []
    assert isinstance(result, CopyResult)
    assert result.dropped == ("stale",) and result.backup is None
    assert result.documents == 2 * (300 + 500 + 100)
    assert list_backups(two_dbs.config()) == []  # no backup unless asked for
    (entry,) = list_history(two_dbs.config(), "staging").entries
    assert entry.summary == "copied environment development into it (4 collections)"


def test_copy_db_leaves_the_source_untouched(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    before = snapshot(two_dbs.source)

    copy_db(two_dbs.config(), "development", "staging")

    assert snapshot(two_dbs.source) == before
    assert leftovers(two_dbs.source) == []


def test_copy_db_with_a_query_set_copies_only_what_it_selects(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    (two_dbs.root / "querysets" / "slim.py").write_text(textwrap.dedent("""
        def scrub(user):
            user["email"] = f"user{user['_id']}@example.invalid"
            return user

        COLLECTIONS = {
            "users": {"filter": {"active": True}, "transform": scrub},
            "orders": {"limit": 10, "sort": [("_id", 1)]},
        }
        EXCLUDE = ["notes"]
    """))

    copy_db(two_dbs.config(), "development", "staging", query_set="slim")

    target = two_dbs.target
    assert data_collections(target) == ["empty", "orders", "users"]
    active = two_dbs.source.users.count_documents({"active": True})
    assert target.users.count_documents({}) == active
    assert target.users.count_documents({"email": {"$regex": "example.invalid$"}}) == active
    assert target.orders.count_documents({}) == 10
    assert [i["name"] for i in target.users.list_indexes()] == ["_id_", "email_1"]


def test_copy_db_keep_backup_stores_a_listed_verifiable_backup_of_the_source(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()

    result = copy_db(config, "development", "staging", keep_backup=True)

    assert result.backup is not None
    [listed] = list_backups(config)
    assert listed.name == result.backup.name and listed.environment == "development"
    assert listed.documents == 900
    assert verify(config, listed.name).ok
    assert any("kept backup" in line for line in text(result))
    # The kept backup restores to the very same data.

    two_dbs.target.extra.insert_one({})
    restore(config, listed.name, "staging")
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_copy_db_keep_backup_with_gzip_is_what_mongorestore_reads(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()

    result = copy_db(config, "development", "staging", keep_backup=True, compression="gzip")

    assert result.backup is not None
    assert result.backup.manifest.archive.key.endswith(".archive.gz")
    assert verify(config, result.backup.name).ok


def test_copy_db_refuses_to_copy_an_environment_onto_itself(two_dbs: TwoDbs) -> None:
    with pytest.raises(UsageError, match="to itself"):
        copy_db(two_dbs.config(), "staging", "staging")


def test_copy_db_refuses_two_environment_names_for_one_database(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)
    # "staging" and "production" are the same database under two names.
    with pytest.raises(UsageError, match="same database"):
        copy_db(two_dbs.config(), "staging", "production", confirm="production")
    assert snapshot(two_dbs.target) == before


def test_copy_db_detects_one_database_behind_different_host_spellings(
    two_dbs: TwoDbs, tmp_path: Path
) -> None:
    """localhost and 127.0.0.1 are one server: the server is asked, not the URL compared."""
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)
    alias = two_dbs.target_url.replace("127.0.0.1", "localhost")
    assert alias != two_dbs.target_url
    config_path = tmp_path / "alias.toml"
    config_path.write_text(
        two_dbs.config_path.read_text() + f'\n[environments.alias]\nurl = "{alias}"\n')

    with pytest.raises(UsageError, match="same database"):
        copy_db(load_config(config_path), "alias", "staging")
    assert snapshot(two_dbs.target) == before
    assert data_collections(two_dbs.target) == sorted(before)


def test_copy_db_refuses_environments_of_different_engines(two_dbs: TwoDbs) -> None:
    path = two_dbs.config_path
    path.write_text(path.read_text()
                    + '\n[environments.reports]\nurl = "postgresql://localhost/reports"\n')

    with pytest.raises(UsageError, match="between engines"):
        copy_db(load_config(path), "development", "reports")


def test_copy_db_into_a_protected_environment_needs_its_name(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=8)
    before = snapshot(two_dbs.target)

    with pytest.raises(ConfirmationRequired, match="production"):
        copy_db(two_dbs.config(), "development", "production")
    assert snapshot(two_dbs.target) == before

    copy_db(two_dbs.config(), "development", "production", confirm="production")
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_copy_db_with_a_query_set_naming_a_missing_collection_fails_and_changes_nothing(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=9)
    before = snapshot(two_dbs.target)
    (two_dbs.root / "querysets" / "typo.py").write_text('COLLECTIONS = {"userz": {}}\n')

    with pytest.raises(QuerySetError, match="does not have: userz"):
        copy_db(two_dbs.config(), "development", "staging", query_set="typo")

    assert snapshot(two_dbs.target) == before
    assert leftovers(two_dbs.target) == []
    assert list_backups(two_dbs.config()) == []
