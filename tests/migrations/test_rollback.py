"""`monarch rollback ENV [--to NAME | --steps N]`: rollback() newest first, refused up front
when one of them cannot be rolled back."""

from __future__ import annotations

import pytest

import monarch
from monarch.errors import MigrationError
from tests.migrations.conftest import Project

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"


@pytest.fixture
def applied(project: Project) -> Project:
    for name in (A, B, C):
        project.counting(name)
    assert project.cli("migrate", "development").code == 0
    return project


def test_rollback_undoes_the_last_applied_migration_by_default(applied: Project) -> None:
    result = applied.cli("rollback", "development")
    assert result.code == 0, result.output
    assert applied.undone() == {C: 1}
    assert applied.records()[C]["state"] == "rolled_back"
    assert f"rolled back {C}" in result.stdout
    assert "Rolled back 1 migration(s) on development" in result.stdout


def test_rollback_steps_goes_newest_first(applied: Project) -> None:
    result = applied.cli("rollback", "development", "--steps", "2")
    assert result.code == 0, result.output
    rolled = [line.split()[2] for line in result.stdout.splitlines() if line.startswith("rolled")]
    assert rolled == [C, B]
    assert applied.undone() == {C: 1, B: 1}
    assert applied.records()[A]["state"] == "applied"


def test_rollback_to_keeps_that_migration_and_undoes_the_later_ones(applied: Project) -> None:
    result = applied.cli("rollback", "development", "--to", "first")
    assert result.code == 0, result.output
    assert applied.undone() == {C: 1, B: 1}
    assert {n: r["state"] for n, r in applied.records().items()} == {
        A: "applied",
        B: "rolled_back",
        C: "rolled_back",
    }


def test_rolled_back_migrations_are_pending_again(applied: Project) -> None:
    applied.cli("rollback", "development", "--steps", "2")
    assert applied.cli("list_migrations", "development", "--check").code == 3
    assert applied.cli("migrate", "development").code == 0
    assert applied.runs() == {A: 1, B: 2, C: 2}


def test_rollback_follows_application_order_for_out_of_order_runs(project: Project) -> None:
    project.counting(A)
    project.counting(C)
    project.cli("migrate", "development")
    project.counting(B)
    project.cli("migrate", "development")  # B ran last, out of order
    assert project.cli("rollback", "development").code == 0
    assert project.undone() == {B: 1}


def test_migration_without_rollback_stops_it_before_anything_runs(project: Project) -> None:
    project.counting(A)
    project.counting(B, rollback=False)
    project.counting(C)
    project.cli("migrate", "development")
    result = project.cli("rollback", "development", "--steps", "3")
    assert result.code == 1
    assert f"{B} has no rollback(); nothing was rolled back" in result.stderr
    assert project.undone() == {}
    assert {r["state"] for r in project.records().values()} == {"applied"}


def test_rollback_of_a_missing_file_is_refused(applied: Project) -> None:
    (applied.migrations / f"{C}.py").unlink()
    result = applied.cli("rollback", "development")
    assert result.code == 1
    assert "the file is gone" in result.stderr
    assert applied.undone() == {}


def test_failed_rollback_is_recorded_and_can_be_retried(project: Project) -> None:
    project.write(A, "pass", rollback='raise RuntimeError("cannot undo yet")')
    project.cli("migrate", "development")
    result = project.cli("rollback", "development")
    assert result.code == 1
    assert f"rollback of migration {A} failed: RuntimeError: cannot undo yet" in result.stderr
    record = project.records()[A]
    assert record["state"] == "failed" and record["action"] == "rollback"
    project.write(A, "pass", rollback="pass")
    assert project.cli("rollback", "development").code == 0
    assert project.records()[A]["state"] == "rolled_back"


def test_rollback_dry_run_changes_nothing(applied: Project) -> None:
    before = applied.snapshot()
    result = applied.cli("rollback", "development", "--steps", "2", "--dry-run")
    assert result.code == 0, result.output
    assert f"roll back {C}" in result.stdout and f"roll back {B}" in result.stdout
    assert applied.snapshot() == before


def test_rollback_with_nothing_applied_says_so(project: Project) -> None:
    project.counting(A)
    result = project.cli("rollback", "development")
    assert result.code == 0
    assert "Nothing to roll back" in result.stdout


def test_steps_and_to_together_are_a_usage_error(applied: Project) -> None:
    result = applied.cli("rollback", "development", "--steps", "1", "--to", A)
    assert result.code == 2


def test_library_rollback_raises_before_running_when_one_lacks_rollback(
    project: Project,
) -> None:
    project.counting(A, rollback=False)
    monarch.migrate(project.config(), "development")
    with pytest.raises(MigrationError, match="no rollback"):
        monarch.rollback(project.config(), "development")
