"""monarch.testing in a user's own suite: the monarch_db fixture, the migration helpers and
the ready check, run by pytester against the real servers."""

from __future__ import annotations

import pytest

from monarch.config import load_config
from monarch.engines import engine_for
from tests.testing.project import ENGINES, ITEMS, UserProject, database_exists


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


@pytest.mark.parametrize("engine", ENGINES)
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


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rollback_that_leaves_data_behind_fails_naming_the_migration_and_the_collection(
    user_project: UserProject, engine: str
) -> None:
    user_project.setup()
    user_project.migration("20240101000000", "create_items")
    user_project.migration("20240102000000", "add_item_wrong", "add_item")
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
        "E *AssertionError: the rollback of 20240102000000_add_item does not restore the data:",
        f"E *  {ITEMS[engine]}: 2 before, 3 after the rollback",
        "E *(2 migration(s) checked, each migrated, rolled back and compared, then migrated "
        "again, on scratch database *)",
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
