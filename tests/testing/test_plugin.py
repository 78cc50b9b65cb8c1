"""monarch.testing in a user's own suite: the monarch_db fixture, the migration helpers and
the ready check, run by pytester against the real servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo import MongoClient

import monarch
from monarch.config import load_config
from monarch.engines import engine_for
from tests.testing.project import ENGINES, ITEMS, UserProject, database_exists, sqlite_rows


def _inventory(project: UserProject) -> dict[str, int]:
    """What the environment ``test`` itself holds (never the scratch databases)."""
    environment = load_config(project.root / "monarch.toml").environment("test")
    if project.engine == "sqlite" and not (project.root / "test.db").exists():
        return {}
    engine = engine_for(environment)
    try:
        return engine.inventory()
    finally:
        engine.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_monarch_db_is_a_new_database_on_the_environments_server_removed_after_the_test(
    user_project: UserProject, engine: str
) -> None:
    user_project.setup()
    user_project.migration("20240101000000", "create_items")
    user_project.tests(f"""
        import pathlib

        def test_scratch(monarch_db):
            pathlib.Path("made.txt").write_text(monarch_db.database)
            assert monarch_db.inventory() == {{}}
            monarch_db.migrate()
            assert monarch_db.inventory() == {{"{ITEMS[engine]}": 2}}
    """)
    user_project.run().assert_outcomes(passed=1)
    made = (user_project.root / "made.txt").read_text()
    environment = load_config(user_project.root / "monarch.toml").environment("test")
    assert made != environment.database
    assert not database_exists(engine, user_project.url, made)
    assert _inventory(user_project) == {}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_rollbacks_that_restore_the_data_pass_the_ready_check(
    user_project: UserProject, engine: str
) -> None:
    user_project.setup()
    user_project.migration("20240101000000", "create_items")
    user_project.migration("20240102000000", "add_item")
    user_project.tests("""
        from monarch.testing import assert_rollbacks_restore

        def test_rollbacks_restore_the_data(monarch_db):
            report = assert_rollbacks_restore(monarch_db)
            assert [c.name for c in report.checks] == [
                "20240101000000_create_items", "20240102000000_add_item"]
            assert monarch_db.pending() == []
    """)
    user_project.run().assert_outcomes(passed=1)
    assert _inventory(user_project) == {}


@pytest.mark.parametrize(("engine", "kind", "said"), [
    ("postgres", "add_item_wrong", "2 before, 3 after the rollback"),
    ("mongo", "scale_wrong", "same count (2), different content"),
])
def test_a_rollback_that_does_not_restore_the_data_fails_naming_the_migration_and_collection(
    user_project: UserProject, engine: str, kind: str, said: str
) -> None:
    user_project.setup()
    user_project.migration("20240101000000", "create_items")
    user_project.migration("20240102000000", kind, "change_items")
    user_project.migration("20240103000000", "add_item")
    user_project.tests("""
        import pathlib

        from monarch.testing import assert_rollbacks_restore

        def test_rollbacks_restore_the_data(monarch_db):
            pathlib.Path("made.txt").write_text(monarch_db.database)
            assert_rollbacks_restore(monarch_db)
    """)
    result = user_project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E *AssertionError: the rollback of 20240102000000_change_items does not restore the "
        "data:",
        f"E *  {ITEMS[engine]}: {said}",
        "E *not checked after it: 20240103000000_add_item",
        "E *(2 migration(s) checked, each migrated, rolled back and compared, then migrated "
        "again, on scratch database monarch_scratch_*)",
    ])
    made = (user_project.root / "made.txt").read_text()
    assert not database_exists(engine, user_project.url, made)


def test_the_helpers_run_one_migration_all_of_them_and_rollbacks(
    user_project: UserProject,
) -> None:
    user_project.setup()
    user_project.migration("20240101000000", "create_items")
    user_project.migration("20240102000000", "add_item")
    user_project.tests("""
        FIRST, SECOND = "20240101000000_create_items", "20240102000000_add_item"

        def test_helpers(monarch_db):
            assert monarch_db.pending() == [FIRST, SECOND]
            assert monarch_db.migrate_one("create_items").ran == [FIRST]
            assert monarch_db.pending() == [SECOND]
            assert monarch_db.rollback().ran == [FIRST]
            assert monarch_db.migrate(to=FIRST).ran == [FIRST]
            assert monarch_db.migrate().ran == [SECOND]
            rows = monarch_db.context()["conn"].execute("SELECT id FROM items ORDER BY id")
            assert [r[0] for r in rows] == [1, 2, 3]
            assert monarch_db.rollback(to=FIRST).ran == [SECOND]
            assert monarch_db.inventory() == {"items": 2}
    """)
    user_project.run().assert_outcomes(passed=1)


def test_a_database_seeded_from_the_latest_backup_of_an_environment_holds_its_data_and_history(
    user_project: UserProject,
) -> None:
    user_project.setup(files=("staging",), ini="monarch_backup = latest:staging\n")
    user_project.migration("20240101000000", "create_items")
    config = load_config(user_project.root / "monarch.toml")
    monarch.migrate(config, "staging")
    monarch.backup(config, "staging")
    user_project.migration("20240102000000", "add_item")
    user_project.tests("""
        import pytest

        from monarch.testing import assert_rollbacks_restore

        def test_seeded(monarch_db):
            assert monarch_db.inventory() == {"items": 2}
            assert monarch_db.pending() == ["20240102000000_add_item"]
            assert_rollbacks_restore(monarch_db)
            assert monarch_db.inventory() == {"items": 3}

        @pytest.mark.monarch(backup=None)
        def test_not_seeded(monarch_db):
            assert monarch_db.inventory() == {}
            assert len(monarch_db.pending()) == 2
    """)
    user_project.run().assert_outcomes(passed=2)
    assert sqlite_rows(user_project.root / "staging.db", "items") == [(1, 1), (2, 2)]


def test_a_protected_environment_or_none_at_all_fails_the_test_saying_what_to_set(
    user_project: UserProject,
) -> None:
    user_project.setup(files=("production",))
    user_project.tests("""
        import pytest

        @pytest.mark.monarch(environment="production")
        def test_on_production(monarch_db):
            pass

        @pytest.mark.monarch(environment="")
        def test_on_nothing(monarch_db):
            pass
    """)
    result = user_project.run("-o", "monarch_environment=")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*Error: environment 'production' is protected (named 'production'); the test kit "
        "makes scratch databases only on servers of unprotected environments",
        "*Try: point the tests at a local or test environment*",
        "*monarch_db needs an environment: set monarch_environment in pytest.ini*",
    ])
    assert not (user_project.root / "production.db").exists()


def test_monarch_keep_keeps_the_scratch_database_and_names_it_in_the_summary(
    user_project: UserProject,
) -> None:
    user_project.setup()
    user_project.migration("20240101000000", "create_items")
    user_project.tests("""
        import pathlib

        def test_kept(monarch_db):
            monarch_db.migrate()
            pathlib.Path("made.txt").write_text(monarch_db.database)
    """)
    result = user_project.run("--monarch-keep")
    result.assert_outcomes(passed=1)
    made = Path((user_project.root / "made.txt").read_text())
    result.stdout.fnmatch_lines(["*monarch: 1 scratch database(s) kept*",
                                 f"test_app.py::test_kept: sqlite:///{made}"])
    assert sqlite_rows(made, "items") == [(1, 1), (2, 2)]
    made.unlink()


@pytest.mark.parametrize("engine", ["mongo"])
def test_a_database_seeded_through_a_query_set_holds_what_it_selects_of_the_environment(
    user_project: UserProject, engine: str
) -> None:
    user_project.setup()
    (user_project.root / "querysets").mkdir()
    (user_project.root / "querysets" / "small.py").write_text(
        'COLLECTIONS = {"users": {"filter": {"deleted": {"$ne": True}}}}\nEXCLUDE = ["logs"]\n')
    client: MongoClient[dict[str, object]] = MongoClient(user_project.url)
    try:
        source = client.get_default_database()
        source.users.insert_many([{"_id": 1}, {"_id": 2, "deleted": True}, {"_id": 3}])
        source.logs.insert_one({"_id": 1})
        user_project.tests("""
            import pytest

            @pytest.mark.monarch(query_set="small")
            def test_seeded(monarch_db):
                assert monarch_db.inventory() == {"users": 2}
                db = monarch_db.context()["db"]
                assert sorted(d["_id"] for d in db.users.find()) == [1, 3]
        """)
        user_project.run().assert_outcomes(passed=1)
        assert _inventory(user_project) == {"users": 3, "logs": 1}
    finally:
        client.close()
