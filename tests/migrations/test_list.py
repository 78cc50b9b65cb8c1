"""`monarch list_migrations ENV` (alias `status`): every migration with its state, as text and
JSON, and `--check` for CI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import monarch
from monarch.engines import engine_for
from monarch.history import LockOwner, Record
from tests.migrations.conftest import Project

A, B, C, D = (
    "20240101000001_first",
    "20240101000002_second",
    "20240101000003_third",
    "20240101000004_fourth",
)


def states(project: Project) -> dict[str, str]:
    result = project.cli("list_migrations", "development", "--json")
    assert result.code == 0, result.output
    return {m["name"]: m["state"] for m in json.loads(result.stdout)["migrations"]}


def test_list_shows_every_migration_in_order_with_its_state(project: Project) -> None:
    project.counting(A)
    project.write(B, 'raise RuntimeError("no such field\\nsecond line")')
    project.counting(C)
    project.cli("migrate", "development")
    result = project.cli("list_migrations", "development")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MIGRATION", "STATE", "DETAIL"]
    rows = [line for line in lines if line.startswith("2024")]
    assert [row.split()[0] for row in rows] == [A, B, C]
    assert rows[0].split()[1] == "applied" and " by " in rows[0]
    assert rows[1].split()[1] == "failed" and "RuntimeError: no such field" in rows[1]
    assert "second line" not in result.stdout
    assert rows[2].split()[1] == "pending"
    assert "2 to run on development." in result.stdout


def test_applied_row_says_when_how_long_and_by_whom(project: Project) -> None:
    project.counting(A)
    project.cli("migrate", "development")
    record = project.records()[A]
    row = next(r for r in project.cli("status", "development").stdout.splitlines() if A in r)
    assert f"{record['applied_at']:%Y-%m-%d %H:%M:%S} UTC" in row
    assert f"by {record['user']}@{record['host']}" in row
    assert " s," in row


def test_list_marks_changed_and_missing_files(project: Project) -> None:
    project.counting(A)
    project.counting(B)
    project.cli("migrate", "development")
    project.counting(A, extra="pass  # changed")
    (project.migrations / f"{B}.py").unlink()
    assert states(project) == {A: "changed", B: "missing"}
    text = project.cli("list_migrations", "development").stdout
    assert "file changed since it was applied" in text
    assert "file missing" in text


def test_json_output_carries_records_and_the_pending_list(project: Project) -> None:
    project.counting(A)
    project.cli("migrate", "development")
    project.counting(B)
    data = json.loads(project.cli("list_migrations", "development", "--json").stdout)
    assert data["environment"] == "development"
    assert data["pending"] == [B]
    first, second = data["migrations"]
    assert first["state"] == "applied"
    assert first["record"]["run_count"] == 1 and first["record"]["checksum"]
    assert first["file"].endswith(f"{A}.py")
    assert second == {
        "name": B,
        "state": "pending",
        "file": str(project.migrations / f"{B}.py"),
        "out_of_order": False,
        "detail": "",
    }
    assert data["lock"] is None


def test_check_exits_3_while_anything_is_pending_and_0_when_up_to_date(project: Project) -> None:
    project.counting(A)
    assert project.cli("list_migrations", "development", "--check").code == 3
    assert project.cli("list_migrations", "development").code == 0
    project.cli("migrate", "development")
    assert project.cli("list_migrations", "development", "--check").code == 0


def test_check_exits_3_for_a_failed_migration(project: Project) -> None:
    project.write(A, "raise KeyError('x')")
    project.cli("migrate", "development")
    assert project.cli("status", "development", "--check").code == 3


def test_an_empty_project_lists_nothing_and_is_up_to_date(project: Project) -> None:
    result = project.cli("list_migrations", "development", "--check")
    assert result.code == 0
    assert "No migrations yet" in result.stdout


def _running(project: Project, name: str, token: str) -> None:
    now = datetime.now(UTC)
    record = Record(name, "running", "x" * 64, started_at=now, user="ci", host="box", pid=4242)
    record.run_id = token
    doc = record.to_dict()
    doc["_id"] = doc.pop("name")
    project.db.monarch_migrations.insert_one(doc)


def test_running_migration_shows_who_holds_the_lock(project: Project) -> None:
    project.counting(A)
    engine = _engine(project)
    owner = LockOwner("tok-1", "ci", "box", 4242, "migrate development", "1.0")
    try:
        assert engine.migration_lock().try_acquire(owner, 60).acquired
        _running(project, A, "tok-1")
        result = project.cli("list_migrations", "development")
        row = next(line for line in result.stdout.splitlines() if A in line)
        assert "running" in row and "ci@box (pid 4242" in row
        assert "Lock held: ci@box (pid 4242, `migrate development`)" in result.stdout
        assert project.cli("list_migrations", "development", "--check").code == 3
    finally:
        engine.close()


def test_running_record_without_a_live_lock_shows_as_interrupted(project: Project) -> None:
    project.counting(A)
    _running(project, A, "gone")
    assert states(project) == {A: "interrupted"}


def test_library_list_migrations_returns_a_status_report(project: Project) -> None:
    project.counting(A)
    report = monarch.list_migrations(project.config(), "development")
    assert [m.name for m in report.migrations] == [A]
    assert [m.name for m in report.needs_work] == [A]
    assert report.lock is None


def _engine(project: Project) -> Any:
    return engine_for(project.config().environment("development"))
