"""Selective restore on MongoDB (issue #12): only the chosen collections are replaced, renamed
ones land beside the live ones, ``--database`` picks another database of the server, and
``--dry-run`` says what would happen, changing nothing. Real server, real store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from monarch import Selection, backup, copy_db, recover, restore, restore_preview
from monarch.engines.mongo.journal import ASIDE_PREFIX, JOURNAL, STAGING_PREFIX, derived_name
from monarch.errors import ConfirmationRequired, UsageError
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    leftovers,
    run_cli,
    seed,
    snapshot,
    two_dbs_fixture,
)
from tests.backups.test_restore_recovery import (
    NEW,
    OLD,
    TOKEN,
    contents,
    dead_pid,
    loaded_but_not_swapped,
)


def _differs(db: Database[Any]) -> None:
    """The target's own contents: the same names as the backup, other data, and extras."""
    db.users.insert_many({"_id": i, "live": True} for i in range(7))
    db.orders.insert_many({"live": i} for i in range(3))
    db.notes.insert_one({"live": "note"})
    db.mine.insert_many({"kept": i} for i in range(5))


@pytest.fixture
def prepared(two_dbs: TwoDbs) -> tuple[TwoDbs, str]:
    seed(two_dbs.source)
    _differs(two_dbs.target)
    return two_dbs, backup(two_dbs.config(), "development").name


def _only(db: Database[Any], *names: str) -> dict[str, Any]:
    whole = snapshot(db)
    return {n: whole[n] for n in names}


def test_selected_collections_are_replaced_and_every_other_one_is_left_untouched(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    untouched = _only(two_dbs.target, "notes", "mine")

    result = restore(two_dbs.config(), name, "staging",
                     selection=Selection(include=("users", "orders")))

    assert sorted(c.name for c in result.collections) == ["orders", "users"]
    assert result.dropped == ()
    assert result.selection == "only users, orders"
    assert _only(two_dbs.target, "users", "orders") == _only(two_dbs.source, "users", "orders")
    assert _only(two_dbs.target, "notes", "mine") == untouched
    assert "empty" not in two_dbs.target.list_collection_names()
    assert leftovers(two_dbs.target) == []


def test_glob_patterns_and_exclusions_choose_the_collections(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    before = snapshot(two_dbs.target)

    result = restore(two_dbs.config(), name, "staging",
                     selection=Selection(include=("*s",), exclude=("no*",)))

    assert sorted(c.name for c in result.collections) == ["orders", "users"]
    after = snapshot(two_dbs.target)
    assert after["notes"] == before["notes"] and after["mine"] == before["mine"]
    assert after["users"] == snapshot(two_dbs.source)["users"]


def test_a_pattern_that_matches_nothing_is_refused_and_changes_nothing(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    before = snapshot(two_dbs.target)

    with pytest.raises(UsageError, match="'userz' matches no collection") as caught:
        restore(two_dbs.config(), name, "staging", selection=Selection(include=("userz",)))

    assert "users" in (caught.value.hint or "")
    assert snapshot(two_dbs.target) == before


def test_a_renamed_collection_lands_beside_the_live_one(prepared: tuple[TwoDbs, str]) -> None:
    two_dbs, name = prepared
    before = snapshot(two_dbs.target)

    result = restore(two_dbs.config(), name, "staging",
                     selection=Selection(include=("users",),
                                         renames=(("users", "users_restored"),)))

    assert [c.name for c in result.collections] == ["users_restored"]
    after = snapshot(two_dbs.target)
    assert after["users_restored"] == snapshot(two_dbs.source)["users"]
    assert {k: v for k, v in after.items() if k != "users_restored"} == before


def test_a_rename_onto_an_existing_name_is_refused_unless_replace_existing(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    before = snapshot(two_dbs.target)
    onto_mine = Selection(include=("users",), renames=(("users", "mine"),))

    with pytest.raises(UsageError, match="'users' would be restored as 'mine'") as caught:
        restore(two_dbs.config(), name, "staging", selection=onto_mine)
    assert "--replace-existing" in (caught.value.hint or "")
    assert snapshot(two_dbs.target) == before

    replacing = Selection(include=("users",), renames=(("users", "mine"),),
                          replace_existing=True)
    restore(two_dbs.config(), name, "staging", selection=replacing)
    after = snapshot(two_dbs.target)
    assert after["mine"] == snapshot(two_dbs.source)["users"]
    assert after["users"] == before["users"]


def test_ns_from_and_ns_to_rename_by_pattern_as_mongorestore_does(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    source_db = two_dbs.source.name
    before = snapshot(two_dbs.target)

    result = restore(two_dbs.config(), name, "staging",
                     selection=Selection(include=("users", "orders"),
                                         ns_from=(f"{source_db}.$c$",),
                                         ns_to=(f"{source_db}.old_$c$",)))

    assert sorted(c.name for c in result.collections) == ["old_orders", "old_users"]
    after = snapshot(two_dbs.target)
    assert after["old_users"] == snapshot(two_dbs.source)["users"]
    assert {k: v for k, v in after.items() if not k.startswith("old_")} == before


def test_dry_run_says_what_would_change_with_counts_and_changes_nothing(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    before = snapshot(two_dbs.target)

    whole = restore_preview(two_dbs.config(), name, "staging")
    picked = restore_preview(two_dbs.config(), name, "staging",
                             selection=Selection(include=("users", "empty")))

    assert snapshot(two_dbs.target) == before and leftovers(two_dbs.target) == []
    by_name = {c.name: (c.action, c.before, c.after) for c in whole.changes}
    assert by_name == {
        "users": ("replace", 7, 300), "orders": ("replace", 3, 500),
        "notes": ("replace", 1, 100), "empty": ("add", None, 0),
        "mine": ("remove", 5, None),
    }
    assert whole.counted_from == "manifest" and whole.untouched == ()
    assert {c.name: c.action for c in picked.changes} == {"users": "replace", "empty": "add"}
    assert picked.untouched == ("mine", "notes", "orders")


def test_dry_run_refuses_a_rename_onto_an_existing_name_as_the_restore_would(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    with pytest.raises(UsageError, match="already has a collection 'mine'"):
        restore_preview(two_dbs.config(), name, "staging",
                        selection=Selection(renames=(("users", "mine"),)))


def test_database_restores_into_another_database_of_the_same_server(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    other = f"{two_dbs.target.name}_other"
    before = snapshot(two_dbs.target)
    client: MongoClient[dict[str, Any]] = MongoClient(two_dbs.target_url)
    try:
        with pytest.raises(ConfirmationRequired):
            restore(two_dbs.config(), name, "production", database=other)
        assert other not in client.list_database_names()

        result = restore(two_dbs.config(), name, "production", database=other,
                         confirm="production", selection=Selection(include=("users",)))

        assert result.database == other and result.other_database
        assert snapshot(client[other]) == _only(two_dbs.source, "users")
        assert snapshot(two_dbs.target) == before
    finally:
        client.drop_database(other)
        client.close()


def test_copy_db_takes_the_same_selection(prepared: tuple[TwoDbs, str]) -> None:
    two_dbs, _ = prepared
    before = snapshot(two_dbs.target)

    result = copy_db(two_dbs.config(), "development", "staging",
                     selection=Selection(include=("orders",),
                                         renames=(("orders", "orders_copy"),)))

    assert [c.name for c in result.collections] == ["orders_copy"] and result.dropped == ()
    after = snapshot(two_dbs.target)
    assert after["orders_copy"] == snapshot(two_dbs.source)["orders"]
    assert {k: v for k, v in after.items() if k != "orders_copy"} == before


def test_cli_selective_restore_rename_and_dry_run_end_to_end(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    before = snapshot(two_dbs.target)

    dry = run_cli(two_dbs, "restore", f"{name}:staging", "--collection", "users",
                  "--rename", "users=users_restored", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert "add" in dry.stdout and "users_restored" in dry.stdout and "from users" in dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    as_json = run_cli(two_dbs, "restore", f"{name}:staging", "--collection", "o*", "--dry-run",
                      "--json")
    assert as_json.code == 0, as_json.stderr
    found = json.loads(as_json.stdout)
    assert found["dry_run"] is True
    assert found["changes"] == [{"action": "replace", "name": "orders", "source": "orders",
                                 "before": 3, "after": 500}]
    assert snapshot(two_dbs.target) == before

    refused = run_cli(two_dbs, "restore", f"{name}:staging", "--rename", "users=mine")
    assert refused.code == 2 and "--replace-existing" in refused.stderr
    assert snapshot(two_dbs.target) == before

    done = run_cli(two_dbs, "restore", f"{name}:staging", "--table", "users",
                   "--nsFrom", "*.users", "--nsTo", "*.users_restored")
    assert done.code == 0, done.stderr
    assert "selected: only users" in done.stdout
    after = snapshot(two_dbs.target)
    assert after["users_restored"] == snapshot(two_dbs.source)["users"]
    assert {k: v for k, v in after.items() if k != "users_restored"} == before


def scoped_swap_steps(db: Database[Any]) -> list[Any]:
    """Every write of a selective swap of ``a`` alone, in the order a restore makes them."""
    aside = derived_name(ASIDE_PREFIX, TOKEN, "a", db.name)
    staging = derived_name(STAGING_PREFIX, TOKEN, "a", db.name)
    journal = db[JOURNAL]
    plan = {"state": "aside", "old_views": [], "views": [], "scope": ["a"],
            "aside": [{"from": "a", "to": aside}], "placing": [{"from": staging, "to": "a"}]}
    return [
        lambda: journal.update_one({"_id": "restore"}, {"$set": plan}),
        lambda: db["a"].rename(aside),
        lambda: journal.update_one({"_id": "restore"}, {"$set": {"state": "placing"}}),
        lambda: db[staging].rename("a"),
        lambda: journal.update_one({"_id": "restore"}, {"$set": {"state": "dropping"}}),
        lambda: db.drop_collection(aside),
        lambda: db.drop_collection(JOURNAL),
    ]


@pytest.mark.parametrize("done", range(8))
def test_a_selective_swap_killed_after_any_step_never_touches_the_other_collections(
    two_dbs: TwoDbs, done: int
) -> None:
    db = two_dbs.target
    loaded_but_not_swapped(db, pid=dead_pid())
    db.bystander.insert_many([{"_id": 9, "v": "mine"}])
    for name in list(NEW):  # only ``a`` was selected: no staging for the others
        if name != "a":
            db.drop_collection(derived_name(STAGING_PREFIX, TOKEN, name, db.name))
    steps = scoped_swap_steps(db)
    for step in steps[:done]:
        step()

    recover(two_dbs.config(), "staging")

    expected = {"a": NEW["a"] if done else OLD["a"], "b": OLD["b"],
                "bystander": [{"_id": 9, "v": "mine"}]}
    assert contents(db) == expected
    assert leftovers(db) == []


def test_cli_database_needs_the_environments_confirmation_and_says_where(
    prepared: tuple[TwoDbs, str],
) -> None:
    two_dbs, name = prepared
    other = f"{two_dbs.target.name}_cli"
    client: MongoClient[dict[str, Any]] = MongoClient(two_dbs.target_url)
    try:
        dry = run_cli(two_dbs, "restore", f"{name}:production", "--database", other,
                      "--dry-run")
        assert dry.code == 0, dry.stderr
        assert dry.stdout.startswith(f"Restoring {name} into database {other} of production")
        refused = run_cli(two_dbs, "restore", f"{name}:production", "--database", other)
        assert refused.code == 2 and "--confirm production" in refused.stderr
        assert other not in client.list_database_names()

        done = run_cli(two_dbs, "restore", f"{name}:production", "--database", other,
                       "--confirm", "production", "--json")
        assert done.code == 0, done.stderr
        assert json.loads(done.stdout)["database"] == other
        assert snapshot(client[other]) == snapshot(two_dbs.source)
    finally:
        client.drop_database(other)
        client.close()
