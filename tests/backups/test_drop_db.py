"""drop_db ENV: the original's command, kept. Protected environments need their name typed
back, as for a restore; MongoDB drops the database, PostgreSQL gets an empty one in its place,
SQLite loses its file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

import monarch
from monarch.errors import ConfirmationRequired, RestoreBusy
from tests.backups.conftest import Project, seed_shop
from tests.backups.restore_support import snapshot
from tests.backups.sql_support import SQLProject, local_project_fixture  # noqa: F401 - fixture
from tests.engines.pg_helpers import contents, execute, fill_rich
from tests.engines.sqlite_helpers import contents as lite_contents
from tests.engines.sqlite_helpers import fill as lite_fill


def database_exists(db: Database[Any]) -> bool:
    return db.name in db.client.list_database_names()


def test_drop_db_on_an_unprotected_environment_drops_its_database(project: Project) -> None:
    seed_shop(project.db)

    result = monarch.drop_db(project.config(), "development")

    assert result.existed and result.database == project.db.name
    assert result.removed == ("empty", "logs", "orders", "users")
    assert not database_exists(project.db)


def test_drop_db_on_a_protected_environment_without_confirmation_changes_nothing(
    project: Project,
) -> None:
    seed_shop(project.db)
    before = snapshot(project.db)

    with pytest.raises(ConfirmationRequired, match="'production' is protected"):
        monarch.drop_db(project.config(), "production")
    with pytest.raises(ConfirmationRequired, match="does not match"):
        monarch.drop_db(project.config(), "production", confirm="development")

    assert snapshot(project.db) == before


def test_drop_db_on_a_protected_environment_with_its_name_drops_it(project: Project) -> None:
    seed_shop(project.db)

    result = monarch.drop_db(project.config(), "production", confirm="production")

    assert result.existed and not database_exists(project.db)


def test_cli_drop_db_protected_refuses_without_confirm_then_drops_with_it(
    project: Project,
) -> None:
    seed_shop(project.db)
    before = snapshot(project.db)

    refused = project.cli("drop_db", "production")

    assert refused.code == 2
    assert "Error: environment 'production' is protected" in refused.stderr
    assert "--confirm production" in refused.stderr
    assert snapshot(project.db) == before

    dropped = project.cli("drop-db", "production", "--confirm", "production")

    assert dropped.code == 0, dropped.output
    assert f"Dropped production's database {project.db.name}: dropped the database" in (
        dropped.stdout)
    assert "it held 4 collections: empty, logs, orders, users" in dropped.stdout
    assert not database_exists(project.db)


def test_cli_drop_db_of_a_database_that_does_not_exist_says_so(project: Project) -> None:
    result = project.cli("drop_db", "development")

    assert result.code == 0, result.output
    assert "does not exist; nothing to drop" in result.stdout


def test_drop_db_on_postgresql_leaves_an_empty_database_with_the_same_owner_and_grants(
    local_project: SQLProject,
) -> None:
    p = local_project
    url = p.urls["development"]
    fill_rich(url)
    database = url.rsplit("/", 1)[1].split("?")[0]
    execute(url, f"COMMENT ON DATABASE {database} IS 'the shop'")
    [(owner_before,)] = execute(url, "SELECT pg_get_userbyid(datdba) FROM pg_database "
                                     "WHERE datname = current_database()")

    result = monarch.drop_db(p.config(), "development")

    assert result.existed and "shop.customers" in result.removed
    assert "empty database" in result.how
    assert contents(url) == {}
    [(owner, comment)] = execute(
        url, "SELECT pg_get_userbyid(datdba), shobj_description(oid, 'pg_database') "
             "FROM pg_database WHERE datname = current_database()")
    assert (owner, comment) == (owner_before, "the shop")
    assert execute(url, "SELECT count(*) FROM pg_database WHERE datname LIKE 'monarch\\_%'") == [
        (0,)]


def test_drop_db_on_a_protected_postgresql_environment_needs_its_name(
    local_project: SQLProject,
) -> None:
    p = local_project
    url = p.urls["production"]
    fill_rich(url)
    before = contents(url)

    with pytest.raises(ConfirmationRequired):
        monarch.drop_db(p.config(), "production")
    assert contents(url) == before

    monarch.drop_db(p.config(), "production", confirm="production")
    assert contents(url) == {}


def test_drop_db_on_sqlite_removes_the_file_and_its_wal(local_project: SQLProject) -> None:
    p = local_project
    lite_fill(p.lite(), wal=True)
    holder = sqlite3.connect(p.lite())
    holder.execute("SELECT count(*) FROM customers").fetchone()
    holder.close()

    result = monarch.drop_db(p.config(), "lite")

    assert result.existed and result.removed == ("audit", "big_orders", "customers", "orders")
    assert not p.lite().exists()
    assert not Path(f"{p.lite()}-wal").exists() and not Path(f"{p.lite()}-shm").exists()
    again = monarch.drop_db(p.config(), "lite")
    assert not again.existed and not p.lite().exists()


def test_drop_db_on_sqlite_refuses_while_another_connection_holds_it_in_wal_mode(
    local_project: SQLProject,
) -> None:
    p = local_project
    lite_fill(p.lite(), wal=True)
    before = lite_contents(p.lite())
    holder = sqlite3.connect(p.lite())
    try:
        holder.execute("SELECT count(*) FROM customers").fetchone()

        with pytest.raises(RestoreBusy, match="open in other connections"):
            monarch.drop_db(p.config(), "lite")
    finally:
        holder.close()

    assert lite_contents(p.lite()) == before
