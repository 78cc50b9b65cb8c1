"""`monarch migrate` and `migrate_one`: order, history, failure and retry, drift, out of order,
dry runs, and the same through the library."""

from __future__ import annotations

from datetime import datetime

import pytest

import monarch
from monarch.errors import DriftError, MigrationFailed
from monarch.migrations.discovery import checksum
from monarch.migrations.results import RunResult
from tests.migrations.conftest import Project

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"


def test_migrate_runs_pending_migrations_in_file_name_order_once(project: Project) -> None:
    for name in (C, A, B):  # written out of order: the file name decides
        project.write(name, 'self.db.order.insert_one({"name": self.name})')
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert [d["name"] for d in project.db.order.find().sort("_id")] == [A, B, C]
    lines = [line for line in result.stdout.splitlines() if line.startswith("applied")]
    assert [line.split()[1] for line in lines] == [A, B, C]
    again = project.cli("migrate", "development")
    assert again.code == 0
    assert "up to date" in again.stdout
    assert project.db.order.count_documents({}) == 3


def test_migrate_records_each_migration_in_monarch_migrations(project: Project) -> None:
    path = project.write(A)
    project.cli("migrate", "development")
    record = project.records()[A]
    assert record["state"] == "applied"
    assert len(record["checksum"]) == 64
    assert isinstance(record["started_at"], datetime)
    assert record["finished_at"] >= record["started_at"]
    assert record["duration"] >= 0
    assert record["user"] and record["host"] and record["pid"] > 0
    assert record["version"] == monarch.__version__
    assert record["error"] is None
    assert record["run_count"] == 1

    assert record["checksum"] == checksum(path.read_bytes())


def test_migrate_to_stops_after_the_named_migration(project: Project) -> None:
    for name in (A, B, C):
        project.counting(name)
    result = project.cli("migrate", "development", "--to", "second")
    assert result.code == 0, result.output
    assert project.runs() == {A: 1, B: 1}
    assert project.cli("migrate", "development").code == 0
    assert project.runs() == {A: 1, B: 1, C: 1}


def test_migrate_to_an_unknown_name_is_a_usage_error(project: Project) -> None:
    project.counting(A)
    result = project.cli("migrate", "development", "--to", "frist")
    assert result.code == 2
    assert "no migration named 'frist'" in result.stderr
    assert project.runs() == {}


def test_failed_migration_is_recorded_stops_the_run_and_exits_1(project: Project) -> None:
    project.counting(A)
    project.write(B, 'raise ValueError("boom: the data is not what I expected")')
    project.counting(C)
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert f"Error: migration {B} failed: ValueError: boom" in result.stderr
    assert "1 later migration(s) were not run" in result.stderr
    assert f"Try: fix {project.migrations / B}.py and run `monarch migrate development`" in (
        result.stderr
    )
    assert project.runs() == {A: 1}
    records = project.records()
    assert records[A]["state"] == "applied"
    assert records[B]["state"] == "failed"
    assert records[B]["error"].startswith("ValueError: boom")
    assert "Traceback" in records[B]["error"]
    assert C not in records


def test_next_migrate_retries_the_fixed_migration_then_runs_the_rest(project: Project) -> None:
    project.counting(A)
    project.write(B, 'raise ValueError("boom")')
    project.counting(C)
    assert project.cli("migrate", "development").code == 1
    project.counting(B)  # the fix
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert project.runs() == {A: 1, B: 1, C: 1}
    record = project.records()[B]
    assert record["state"] == "applied" and record["run_count"] == 2 and record["error"] is None


def test_pending_migration_older_than_an_applied_one_runs_and_says_out_of_order(
    project: Project,
) -> None:
    project.counting(A)
    project.counting(C)
    assert project.cli("migrate", "development").code == 0
    project.counting(B)  # merged from another branch
    status = project.cli("list_migrations", "development")
    assert "will run out of order" in status.stdout
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert project.runs() == {A: 1, B: 1, C: 1}
    [line] = [line for line in result.stdout.splitlines() if B in line]
    assert "ran out of order" in line
    assert project.records()[B]["out_of_order"] is True
    assert project.records()[C]["out_of_order"] is False


def test_changed_applied_migration_is_a_warning(project: Project) -> None:
    project.counting(A)
    assert project.cli("migrate", "development").code == 0
    project.counting(A, extra="pass  # edited after it was applied")
    project.counting(B)
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert f"Warning: {A} changed since it was applied" in result.stderr
    assert project.runs() == {A: 1, B: 1}


def test_strict_makes_drift_an_error_before_anything_runs(project: Project) -> None:
    project.counting(A)
    assert project.cli("migrate", "development").code == 0
    project.counting(A, extra="pass  # edited")
    project.counting(B)
    result = project.cli("migrate", "development", "--strict")
    assert result.code == 1
    assert "changed since they were applied" in result.stderr and A in result.stderr
    assert project.runs() == {A: 1}
    with pytest.raises(DriftError):
        monarch.migrate(project.config(), "development", strict=True)


def test_line_endings_alone_are_not_drift(project: Project) -> None:
    project.counting(A)
    assert project.cli("migrate", "development").code == 0
    text = (project.migrations / f"{A}.py").read_bytes()
    (project.migrations / f"{A}.py").write_bytes(text.replace(b"\n", b"\r\n"))
    result = project.cli("migrate", "development", "--strict")
    assert result.code == 0, result.output
    assert "changed" not in result.output


def test_dry_run_prints_the_plan_and_changes_nothing(project: Project) -> None:
    project.counting(A)
    project.counting(C)
    assert project.cli("migrate", "development").code == 0
    project.counting(B)
    project.counting("20240101000004_fourth")
    project.write(A, "pass  # drifted")
    before = project.snapshot()
    result = project.cli("migrate", "development", "--dry-run")
    assert result.code == 0, result.output
    assert project.snapshot() == before
    assert "would run 2 migration(s)" in result.stdout
    assert f"migrate {B} (out of order" in result.stdout
    assert "migrate 20240101000004_fourth" in result.stdout
    assert f"{A} changed since it was applied" in result.stderr
    assert "Nothing was changed." in result.stdout


def test_dry_run_on_an_untouched_database_creates_nothing(project: Project) -> None:
    project.counting(A)
    result = project.cli("migrate", "development", "--dry-run")
    assert result.code == 0, result.output
    assert project.db.list_collection_names() == []


def test_migrate_one_runs_an_applied_migration_again_and_records_it(project: Project) -> None:
    project.counting(A)
    project.counting(B)
    assert project.cli("migrate", "development").code == 0
    result = project.cli("migrate_one", "first", "development")
    assert result.code == 0, result.output
    assert project.runs() == {A: 2, B: 1}
    assert project.records()[A]["run_count"] == 2


def test_migrate_one_runs_only_that_migration(project: Project) -> None:
    for name in (A, B, C):
        project.counting(name)
    result = project.cli("migrate_one", B, "development")
    assert result.code == 0, result.output
    assert project.runs() == {B: 1}
    assert set(project.records()) == {B}


def test_migrate_one_with_an_unknown_name_suggests_the_closest(project: Project) -> None:
    project.counting(A)
    result = project.cli("migrate_one", "20240101000001_frist", "development")
    assert result.code == 2
    assert f"did you mean '{A}'" in result.stderr


def test_library_migrate_returns_what_ran(project: Project) -> None:
    project.counting(A)
    project.counting(B)
    result = monarch.migrate(project.config(), "development")
    assert isinstance(result, RunResult)
    assert result.ran == [A, B]
    assert [o.state for o in result.outcomes] == ["applied", "applied"]
    assert monarch.migrate(project.config(), "development").ran == []


def test_library_failure_raises_with_the_partial_result(project: Project) -> None:
    project.counting(A)
    project.write(B, "1 / 0")
    with pytest.raises(MigrationFailed) as caught:
        monarch.migrate(project.config(), "development")
    result = caught.value.result
    assert isinstance(result, RunResult)
    assert result.ran == [A]
    assert result.failed is not None and result.failed.name == B
    assert "ZeroDivisionError" in (result.failed.error or "")


def test_library_dry_run_returns_the_plan(project: Project) -> None:
    project.counting(A)
    result = monarch.migrate(project.config(), "development", dry_run=True)
    assert result.dry_run and [s.name for s in result.planned] == [A]
    assert result.outcomes == ()


def test_migration_gets_db_client_env_name_and_a_logger(project: Project) -> None:
    project.write(
        A,
        """
        self.log.info("hello from %s", self.name)
        self.db.seen.insert_one({
            "env": self.env,
            "name": self.name,
            "db": self.db.name,
            "client": type(self.client).__name__,
            "logger": self.log.name,
        })
        """,
    )
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output
    seen = project.db.seen.find_one()
    assert seen is not None
    assert seen["env"] == "development" and seen["name"] == A
    assert seen["db"] == project.db.name and seen["client"] == "MongoClient"
    assert seen["logger"] == f"monarch.migration.{A}"
    assert f"hello from {A}" in result.stderr


def test_python_dash_m_monarch_migrate_end_to_end(project: Project) -> None:
    project.counting(A)
    done = project.process("migrate", "development")
    assert done.returncode == 0, done.stderr
    assert A in done.stdout
    assert project.runs() == {A: 1}


def test_migrate_with_nothing_pending_writes_nothing(project: Project) -> None:
    project.counting(A)
    assert project.cli("migrate", "development").code == 0
    before = project.snapshot()
    result = project.cli("migrate", "development", "--lock-timeout", "0")
    assert result.code == 0 and "up to date" in result.stdout
    assert project.snapshot() == before
