"""``monarch rehearse`` on PostgreSQL and SQLite: .sql and Python migrations on a scratch copy
(a database of the same server; a file in the same folder), rows written per table, a rollback
that leaves a table changed (exit 4), a failure (exit 1), SIGTERM; the environment's
fingerprint is compared before and after every test, and no scratch database is left."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monarch.backups.scratch import PREFIX
from monarch.engines import engine_for
from monarch.engines.base import Fingerprint
from tests.migrations.conftest import SQLProject

CREATE = """
CREATE TABLE orders (id integer PRIMARY KEY, total integer NOT NULL, status text);
"""
MARK_PAID = "UPDATE orders SET status = 'paid' WHERE total > 10;"
UNMARK = "UPDATE orders SET status = NULL;"


def fingerprint(project: SQLProject) -> dict[str, Fingerprint]:
    engine = engine_for(project.config().environment("development"))
    try:
        return engine.fingerprint()
    finally:
        engine.close()


_OTHERS: set[str] = set()  # what other tests of this worker left on the server


def scratches(project: SQLProject) -> list[str]:
    """This test's scratch databases on the server (SQLite: in the folder)."""
    engine = engine_for(project.config().environment("development"))
    try:
        return [name for name in engine.databases(PREFIX) if name not in _OTHERS]
    finally:
        engine.close()


def table(project: SQLProject, name: str) -> str:
    return f"public.{name}" if project.engine == "postgres" else name


@pytest.fixture
def shop(sql_project: SQLProject) -> Iterator[SQLProject]:
    """20 orders, their table made by an applied migration; the environment is checked
    unchanged and no scratch database left, afterwards."""
    sql_project.write_sql("20260101000000_orders", CREATE, "DROP TABLE orders;")
    assert sql_project.cli("migrate", "development").code == 0
    with sql_project.connect() as conn:
        for i in range(20):
            conn.execute(f"INSERT INTO orders (id, total) VALUES ({i}, {i * 2})")
    before = fingerprint(sql_project)
    _OTHERS.clear()
    _OTHERS.update(scratches(sql_project))
    yield sql_project
    assert fingerprint(sql_project) == before
    assert scratches(sql_project) == []


def test_a_clean_rehearsal_counts_the_rows_each_migration_wrote(shop: SQLProject) -> None:
    shop.write_sql("20260201000000_mark_paid", MARK_PAID, UNMARK)
    shop.write_sql("20260202000000_index", "CREATE INDEX orders_status ON orders (status);",
                   "DROP INDEX orders_status;")
    result = shop.cli("rehearse", "development", "--json")
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rollback"] == "restored" and data["again"] is True
    assert data["copied"] == {table(shop, "orders"): 20}
    paid, index = data["steps"]
    assert paid["migrate"]["accounting"] == [{"target": "orders", "matched": 14, "modified": 14}]
    assert index["migrate"]["accounting"] == [{"target": "orders", "indexes_created": 1}]
    assert paid["rollback"]["accounting"] == [{"target": "orders", "matched": 20, "modified": 20}]


def test_a_rollback_that_leaves_rows_changed_exits_4_naming_the_table(
    shop: SQLProject,
) -> None:
    shop.write_sql("20260201000000_mark_paid", MARK_PAID, UNMARK)
    shop.write_sql("20260202000000_discount", "UPDATE orders SET total = total - 1;",
                   "SELECT 1;")
    result = shop.cli("rehearse", "development")
    assert result.code == 4, result.output
    assert f"{table(shop, 'orders')} differ(s) from before the migrations" in result.stderr


def test_a_failing_migration_exits_1(shop: SQLProject) -> None:
    shop.write_sql("20260201000000_broken", "UPDATE no_such_table SET x = 1;", "SELECT 1;")
    result = shop.cli("rehearse", "development")
    assert result.code == 1, result.output
    assert "Migration 20260201000000_broken failed" in result.stderr


def test_sigterm_stops_a_rehearsal_and_removes_its_scratch_database(
    shop: SQLProject, tmp_path: Path,
) -> None:
    marker = tmp_path / "running"
    shop.write("20260201000000_slow", f"open({str(marker)!r}, 'w').close()\n"
               "import time; time.sleep(60)", rollback="pass")
    child = shop.spawn("--config", str(shop.config_path), "rehearse", "development")
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    assert len(scratches(shop)) == 1
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143, err
    assert "stopped the rehearsal of 'development', which was not changed" in err
    assert scratches(shop) == []
