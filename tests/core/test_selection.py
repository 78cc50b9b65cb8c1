"""Selection: which names a selective restore takes and what it calls them (no server)."""

from __future__ import annotations

import pytest

from monarch import Selection
from monarch.errors import UsageError


def test_an_empty_selection_is_the_whole_database() -> None:
    whole = Selection()
    assert whole.whole and not whole.partial
    assert whole.selects("anything") and whole.target_name("anything") == "anything"


def test_globs_include_then_exclude_and_match_whole_names() -> None:
    picked = Selection(include=("fs.*", "user?"), exclude=("fs.chunks",))
    assert picked.selects("fs.files") and picked.selects("users")
    assert not picked.selects("fs.chunks") and not picked.selects("user")
    assert not Selection(include=("files",)).selects("fs.files")


def test_postgres_names_match_bare_or_qualified_and_schemas_whole() -> None:
    assert Selection(include=("users",)).selects("users", "public")
    assert Selection(include=("audit.*",)).selects("log", "audit")
    assert not Selection(schemas=("audit",)).selects("users", "public")
    renamed = Selection(renames=(("users", "users_old"),))
    assert renamed.qualified_target("public.users") == "public.users_old"
    moved = Selection(renames=(("public.users", "archive.users"),))
    assert moved.qualified_target("public.users") == "archive.users"


def test_renames_come_first_then_namespace_patterns_in_order() -> None:
    both = Selection(renames=(("users", "people"),), ns_from=("shop.$c$",),
                     ns_to=("shop.old_$c$",))
    assert both.target_name("users", "shop") == "people"
    assert both.target_name("orders", "shop") == "old_orders"
    assert both.target_name("orders", "other") == "orders"
    stars = Selection(ns_from=("*.fs.*",), ns_to=("*.backup_fs.*",))
    assert stars.target_name("fs.files", "shop") == "backup_fs.files"
    bare = Selection(ns_from=("$a$_log",), ns_to=("old_$a$_log",))
    assert bare.target_name("app_log") == "old_app_log"


def test_namespace_patterns_pair_up_and_use_only_known_variables() -> None:
    with pytest.raises(UsageError, match="come in pairs"):
        Selection(ns_from=("a.$c$",))
    with pytest.raises(UsageError, match="does not set"):
        Selection(ns_from=("a.$c$",), ns_to=("a.$d$",))
    with pytest.raises(UsageError, match="OLD=NEW"):
        Selection.from_options(renames=["users"])


def test_a_pattern_or_rename_that_matches_nothing_is_refused_naming_what_there_is() -> None:
    with pytest.raises(UsageError, match="'userz' matches no collection") as caught:
        Selection(include=("userz",)).require_matches(["users"], "collection", "the dump")
    assert caught.value.hint == "the dump holds: users"
    with pytest.raises(UsageError, match="has no table 'nope'"):
        Selection(renames=(("nope", "x"),)).require_matches(["public.users"], "table", "b",
                                                              qualified=True)
    with pytest.raises(UsageError, match="no schema 'audit'"):
        Selection(schemas=("audit",)).require_matches(["public.users"], "table", "b",
                                                        qualified=True)


def test_renames_never_overwrite_unless_asked_and_never_merge_two_names() -> None:
    finals = {"users": "mine"}
    with pytest.raises(UsageError, match="already has a collection 'mine'"):
        Selection(renames=(("users", "mine"),)).refuse_overwrite(finals, ["mine"], "env")
    Selection(renames=(("users", "mine"),), replace_existing=True).refuse_overwrite(
        finals, ["mine"], "env")
    Selection(include=("users",)).refuse_overwrite({"users": "users"}, ["users"], "env")
    with pytest.raises(UsageError, match="would both be restored as 'x'"):
        Selection().refuse_overwrite({"a": "x", "b": "x"}, [], "env")
