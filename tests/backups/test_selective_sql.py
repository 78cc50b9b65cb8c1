"""Selective restore on PostgreSQL (``--table``/``--schema``, renames, one transaction) and
SQLite (``--table``, ATTACH and one transaction): only the chosen tables change, with their
indexes, constraints and sequences; every other table is untouched. Real servers and files."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import monarch
from monarch import Selection
from monarch.errors import MonarchError, UsageError
from tests.backups.conftest import environ
from tests.backups.sql_support import (  # noqa: F401 - fixtures
    SQLProject,
    local_project_fixture,
)
from tests.engines.pg_helpers import BOOKKEEPING
from tests.engines.test_postgres_kill import wait_for_restore_lock_free
from tests.servers import PostgresServer

PG_SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL);
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     user_id int NOT NULL REFERENCES users (id), total numeric);
CREATE INDEX orders_total ON orders (total);
CREATE TABLE notes (body text);
CREATE SCHEMA audit;
CREATE TABLE audit.log (at int PRIMARY KEY, what text);
"""


def pg_fill(url: str, version: int, users: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PG_SCHEMA)
        conn.execute("INSERT INTO users (email) SELECT 'v' || %s::text || '-' || i || '@x' "
                     "FROM generate_series(1, %s) i", (version, users))
        conn.execute("INSERT INTO orders (user_id, total) SELECT 1 + i %% %s, i * %s "
                     "FROM generate_series(1, %s) i", (users, version, users * 2))
        conn.execute("INSERT INTO notes SELECT 'note ' || i || ' of v' || %s::text "
                     "FROM generate_series(1, %s) i", (version, version + 2))
        conn.execute("INSERT INTO audit.log SELECT i, 'v' || %s::text "
                     "FROM generate_series(1, %s) i", (version, version * 3))


def pg_state(url: str) -> dict[str, Any]:
    """Every table's rows (sorted) and every index's definition, by ``schema.table``."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        found: dict[str, Any] = {}
        for schema, table in tables:
            if table in BOOKKEEPING:
                continue
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            indexes = conn.execute(
                "SELECT indexname, regexp_replace(indexdef, ' ON .* USING', ' USING') "
                "FROM pg_indexes WHERE schemaname = %s AND tablename = %s ORDER BY 1",
                (schema, table)).fetchall()
            found[f"{schema}.{table}"] = (sorted(map(repr, rows)), indexes)
        return found


def without(state: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in names}


@pytest.fixture
def pg(local_project: SQLProject) -> tuple[SQLProject, str]:
    p = local_project
    pg_fill(p.urls["development"], 2, 40)
    pg_fill(p.urls["staging"], 1, 10)
    with psycopg.connect(p.urls["staging"], autocommit=True) as conn:
        conn.execute("CREATE TABLE mine (n int); INSERT INTO mine VALUES (1), (2)")
    return p, monarch.backup(p.config(), "development").name


def test_pg_selected_tables_are_replaced_with_their_indexes_and_the_rest_untouched(
    pg: tuple[SQLProject, str],
) -> None:
    p, name = pg
    before, source = pg_state(p.urls["staging"]), pg_state(p.urls["development"])

    result = monarch.restore(p.config(), name, "staging",
                             selection=Selection(include=("users", "orders")))

    after = pg_state(p.urls["staging"])
    assert result.tables == ("public.orders", "public.users") and result.dropped == ()
    assert after["public.users"] == source["public.users"]
    assert after["public.orders"] == source["public.orders"]
    assert without(after, "public.users", "public.orders") == without(
        before, "public.users", "public.orders")
    with psycopg.connect(p.urls["staging"], autocommit=True) as conn:
        conn.execute("INSERT INTO users (email) VALUES ('new@x')")  # the sequence came along
        databases = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE "
                                 "'%%monarch_restore%%'").fetchone()
    assert databases == (0,)


def test_pg_schema_selection_and_exclusion(pg: tuple[SQLProject, str]) -> None:
    p, name = pg
    before, source = pg_state(p.urls["staging"]), pg_state(p.urls["development"])

    monarch.restore(p.config(), name, "staging", selection=Selection(schemas=("audit",)))
    after = pg_state(p.urls["staging"])
    assert after["audit.log"] == source["audit.log"]
    assert without(after, "audit.log") == without(before, "audit.log")

    monarch.restore(p.config(), name, "staging",
                    selection=Selection(include=("public.*",), exclude=("users", "orders")))
    again = pg_state(p.urls["staging"])
    assert again["public.notes"] == source["public.notes"]
    assert again["public.users"] == before["public.users"]


def test_pg_a_table_restored_beside_the_live_one_brings_renamed_indexes(
    pg: tuple[SQLProject, str],
) -> None:
    p, name = pg
    before, source = pg_state(p.urls["staging"]), pg_state(p.urls["development"])

    with pytest.raises(UsageError, match=r"already has a table 'public\.mine'"):
        monarch.restore(p.config(), name, "staging", selection=Selection(
            include=("notes",), renames=(("notes", "mine"),)))
    assert pg_state(p.urls["staging"]) == before

    monarch.restore(p.config(), name, "staging", selection=Selection(
        include=("users",), renames=(("users", "users_old"),)))

    after = pg_state(p.urls["staging"])
    rows, indexes = after["public.users_old"]
    assert rows == source["public.users"][0]
    assert [i for i, _ in indexes] == ["users_old_email_key", "users_old_pkey"]
    assert without(after, "public.users_old") == before


def test_pg_a_table_other_tables_reference_is_never_half_replaced(
    pg: tuple[SQLProject, str],
) -> None:
    p, name = pg
    before = pg_state(p.urls["staging"])

    with pytest.raises(MonarchError, match="pg_restore"):
        monarch.restore(p.config(), name, "staging", selection=Selection(include=("users",)))

    assert pg_state(p.urls["staging"]) == before


def test_pg_dry_run_counts_rows_before_and_after_and_changes_nothing(
    pg: tuple[SQLProject, str],
) -> None:
    p, name = pg
    before = pg_state(p.urls["staging"])

    found = monarch.restore_preview(p.config(), name, "staging",
                                    selection=Selection(include=("users", "orders")))

    assert {c.name: (c.action, c.before) for c in found.changes} == {
        "public.users": ("replace", 10), "public.orders": ("replace", 20)}
    assert "public.mine" in found.untouched
    assert pg_state(p.urls["staging"]) == before


def test_pg_database_restores_into_another_database_of_the_server(
    pg: tuple[SQLProject, str],
) -> None:
    p, name = pg
    other = f"{p.urls['staging'].rsplit('/', 1)[1]}_other"
    with psycopg.connect(p.urls["staging"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        before = pg_state(p.urls["staging"])
        result = monarch.restore(p.config(), name, "staging", database=other)
        other_url = p.urls["staging"].rsplit("/", 1)[0] + f"/{other}"
        assert result.database == other and result.other_database
        assert pg_state(other_url) == pg_state(p.urls["development"])
        assert pg_state(p.urls["staging"]) == before
    finally:
        with psycopg.connect(p.urls["staging"], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pg_selective_restore_killed_at_random_moments_is_old_or_new(
    pg: tuple[SQLProject, str], postgres_server: PostgresServer,
) -> None:
    p, name = pg
    selected = ("public.users", "public.orders")
    old = pg_state(p.urls["staging"])
    new = {**old, **{t: pg_state(p.urls["development"])[t] for t in selected}}
    old_backup = monarch.backup(p.config(), "staging").name
    argv = [sys.executable, "-m", "monarch", "--config", str(p.config_path), "restore",
            f"{name}:staging", "--table", "users", "--table", "orders", "--quiet"]
    started = time.monotonic()
    subprocess.run(argv, cwd=p.root, env=environ(), check=True, capture_output=True)
    whole = time.monotonic() - started
    assert pg_state(p.urls["staging"]) == new
    back = Selection(include=("users", "orders"))
    monarch.restore(p.config(), old_backup, "staging", selection=back)
    assert pg_state(p.urls["staging"]) == old
    rng = random.Random(12)
    seen = []
    for _ in range(8):
        process = subprocess.Popen(argv, cwd=p.root, env=environ(), start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.2) * whole)
        os.killpg(process.pid, signal.SIGKILL)  # monarch and its pg_dump/pg_restore
        process.wait()
        wait_for_restore_lock_free(postgres_server.uri, p.urls["staging"].rsplit("/", 1)[1])
        monarch.recover(p.config(), "staging")
        now = pg_state(p.urls["staging"])
        assert now in (old, new), "a mix of old and new tables"
        with psycopg.connect(p.urls["staging"], autocommit=True) as conn:
            scratch = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE "
                                   "'%%monarch_restore%%' AND datname LIKE %s",
                                   (p.urls["staging"].rsplit("/", 1)[1] + "%",)).fetchone()
        assert scratch == (0,), "a scratch database was left"
        seen.append("new" if now == new else "old")
        if now == new:
            monarch.restore(p.config(), old_backup, "staging", selection=back)
    print(f"\nselective pg restore of {whole:.2f}s killed 8 times: {seen}")


LITE_SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE NOT NULL,
                    domain TEXT GENERATED ALWAYS AS (substr(email, instr(email, '@'))) VIRTUAL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), total REAL);
CREATE INDEX orders_total ON orders (total);
CREATE TABLE audit (what TEXT);
CREATE TRIGGER orders_audit AFTER INSERT ON orders BEGIN INSERT INTO audit VALUES ('order'); END;
"""


def lite_fill(path: Path, version: int, users: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(LITE_SCHEMA)
        conn.executemany("INSERT INTO users (email) VALUES (?)",
                         [(f"v{version}-{i}@x{version}",) for i in range(users)])
        conn.executemany("INSERT INTO orders (user_id, total) VALUES (?, ?)",
                         [(1 + i % users, i * version) for i in range(users * 2)])
        conn.commit()
    finally:
        conn.close()


def lite_state(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                               "WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY name").fetchall()
        found: dict[str, Any] = {"schema": objects}
        for kind, table, _, _ in objects:
            if kind == "table":
                found[table] = sorted(map(repr, conn.execute(f'SELECT * FROM "{table}"')))
        return found
    finally:
        conn.close()


@pytest.fixture
def lite(local_project: SQLProject) -> tuple[SQLProject, str]:
    p = local_project
    lite_fill(p.lite(), 2, 30)
    lite_fill(p.lite("lite_copy"), 1, 5)
    conn = sqlite3.connect(p.lite("lite_copy"))
    conn.executescript("CREATE TABLE mine (n); INSERT INTO mine VALUES (1);")
    conn.close()
    return p, monarch.backup(p.config(), "lite").name


def test_sqlite_selected_tables_are_replaced_in_one_transaction_the_rest_untouched(
    lite: tuple[SQLProject, str],
) -> None:
    p, name = lite
    before, source = lite_state(p.lite("lite_copy")), lite_state(p.lite())

    result = monarch.restore(p.config(), name, "lite_copy",
                             selection=Selection(include=("users", "ord*")))

    after = lite_state(p.lite("lite_copy"))
    assert result.tables == ("orders", "users") and result.dropped == ()
    assert after["users"] == source["users"] and after["orders"] == source["orders"]
    assert after["sqlite_sequence"] == [repr(("users", 30))]
    assert after["audit"] == before["audit"] and after["mine"] == before["mine"]
    assert sorted(o[1] for o in after["schema"]) == sorted(o[1] for o in before["schema"])
    assert list(p.lite("lite_copy").parent.glob("lite_copy.db-monarch/restore-*")) == []


def test_sqlite_rename_beside_the_live_table_and_refusals(lite: tuple[SQLProject, str]) -> None:
    p, name = lite
    before, source = lite_state(p.lite("lite_copy")), lite_state(p.lite())

    with pytest.raises(UsageError, match="already has a table 'mine'"):
        monarch.restore(p.config(), name, "lite_copy",
                        selection=Selection(renames=(("users", "mine"),)))
    with pytest.raises(UsageError, match="file, not a server"):
        monarch.restore(p.config(), name, "lite_copy", database="other")
    assert lite_state(p.lite("lite_copy")) == before

    monarch.restore(p.config(), name, "lite_copy", selection=Selection(
        include=("users",), renames=(("users", "users_old"),)))

    after = lite_state(p.lite("lite_copy"))
    assert after["users_old"] == source["users"]
    assert after["users"] == before["users"]


def test_sqlite_cli_dry_run_json_then_selective_restore(lite: tuple[SQLProject, str]) -> None:
    p, name = lite
    before = lite_state(p.lite("lite_copy"))

    dry = p.process("restore", f"{name}:lite_copy", "--table", "orders", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert json.loads(dry.stdout)["changes"] == [
        {"action": "replace", "name": "orders", "source": "orders", "before": 10, "after": 60}]
    assert lite_state(p.lite("lite_copy")) == before

    done = p.process("restore", f"{name}:lite_copy", "--table", "orders")
    assert done.code == 0, done.stderr
    assert "selected: only orders" in done.stdout
    assert lite_state(p.lite("lite_copy"))["orders"] == lite_state(p.lite())["orders"]


def test_pg_copy_db_takes_a_selection_and_leaves_the_rest(pg: tuple[SQLProject, str]) -> None:
    p, _ = pg
    before, source = pg_state(p.urls["staging"]), pg_state(p.urls["development"])

    result = monarch.copy_db(p.config(), "development", "staging",
                             selection=Selection(schemas=("audit",),
                                                 renames=(("log", "log_copy"),)))

    after = pg_state(p.urls["staging"])
    assert result.tables == ("audit.log_copy",) and result.dropped == ()
    assert after["audit.log_copy"][0] == source["audit.log"][0]
    assert without(after, "audit.log_copy") == before


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sqlite_selective_restore_killed_at_random_moments_is_old_or_new(
    local_project: SQLProject,
) -> None:
    p = local_project
    lite_fill(p.lite(), 2, 20_000)
    lite_fill(p.lite("lite_copy"), 1, 50)
    conn = sqlite3.connect(p.lite("lite_copy"))
    conn.executescript("CREATE TABLE mine (n); INSERT INTO mine VALUES (1);")
    conn.close()
    new_backup = monarch.backup(p.config(), "lite").name
    old_backup = monarch.backup(p.config(), "lite_copy").name
    old = lite_state(p.lite("lite_copy"))
    back = Selection(include=("users", "orders"))
    argv = [sys.executable, "-m", "monarch", "--config", str(p.config_path), "restore",
            f"{new_backup}:lite_copy", "--table", "users", "--table", "orders", "--quiet"]
    started = time.monotonic()
    subprocess.run(argv, cwd=p.root, env=environ(), check=True, capture_output=True)
    whole = time.monotonic() - started
    new = lite_state(p.lite("lite_copy"))
    assert new["users"] == lite_state(p.lite())["users"] and new["mine"] == old["mine"]
    monarch.restore(p.config(), old_backup, "lite_copy", selection=back)
    assert lite_state(p.lite("lite_copy")) == old
    rng = random.Random(7)
    seen = []
    for _ in range(10):
        process = subprocess.Popen(argv, cwd=p.root, env=environ(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.3) * whole)  # some land after the commit
        process.send_signal(signal.SIGKILL)
        process.wait()
        monarch.recover(p.config(), "lite_copy")
        now = lite_state(p.lite("lite_copy"))
        assert now in (old, new), "a mix of old and new tables"
        check = sqlite3.connect(p.lite("lite_copy"))
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        seen.append("new" if now == new else "old")
        if now == new:
            monarch.restore(p.config(), old_backup, "lite_copy", selection=back)
    print(f"\nselective sqlite restore of {whole:.2f}s killed 10 times: {seen}")


def test_pg_dry_run_into_a_database_that_does_not_exist_yet_adds_everything(
    pg: tuple[SQLProject, str],
) -> None:
    p, name = pg
    missing = f"{p.urls['staging'].rsplit('/', 1)[1]}_none"

    found = monarch.restore_preview(p.config(), name, "staging", database=missing)

    assert found.other_database and found.database == missing
    assert {c.action for c in found.changes} == {"add"}
    assert {c.name for c in found.changes} >= {"public.users", "audit.log"}
