"""History repair with an audit trail (baseline, mark, accept) and `monarch history`, on MongoDB,
PostgreSQL and SQLite."""

from __future__ import annotations

import getpass
import json
import os
import socket

import pytest

import monarch
from monarch.errors import ConfirmationRequired, UsageError
from tests.migrations.conftest import AnyProject, Project, SQLProject

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"

def _three(p: AnyProject) -> None:
    for name in (A, B, C):
        p.counting(name)


def test_baseline_records_every_migration_up_to_name_as_applied_without_running_it(
    any_project: AnyProject,
) -> None:
    p = any_project
    _three(p)

    result = p.cli("baseline", "development", "--to", "second")

    assert result.code == 0, result.output
    assert "2 migration(s) recorded applied without running" in result.stdout
    assert p.runs() == {}
    report = monarch.list_migrations(p.config(), "development")
    states = {m.name: m.state for m in report.migrations}
    assert states == {A: "applied", B: "applied", C: "pending"}
    entries = monarch.list_history(p.config(), "development").entries
    assert [e.kind for e in entries] == ["baseline"]
    event = entries[0]
    assert event.user == getpass.getuser() and event.host == socket.gethostname()
    assert event.pid == os.getpid() and event.command == "baseline development --to second"
    assert [(c.subject, c.what, c.before, c.after) for c in event.changes] == [
        (A, "state", "pending", "applied"),
        (B, "state", "pending", "applied"),
    ]
    # The rest runs as usual; the baselined ones never do.
    assert p.cli("migrate", "development").code == 0
    assert p.runs() == {C: 1}
    kinds = [(e.kind, e.migration) for e in monarch.list_history(p.config(), "development").entries]
    assert kinds == [("migrate", C), ("baseline", None)]


def test_mark_applied_then_pending_records_each_change_and_the_next_migrate_runs_it(
    any_project: AnyProject,
) -> None:
    p = any_project
    _three(p)
    assert p.cli("migrate", "development", "--to", A).code == 0

    applied = monarch.mark(p.config(), "development", "second", applied=True)
    pending = monarch.mark(p.config(), "development", A, applied=False)
    again = monarch.mark(p.config(), "development", A, applied=False)

    assert [(c.subject, c.before, c.after) for c in applied.changes] == [(B, "pending", "applied")]
    assert [(c.subject, c.before, c.after) for c in pending.changes] == [(A, "applied", "pending")]
    assert not again.changed and again.event is None  # nothing to do: no entry
    entries = monarch.list_history(p.config(), "development").entries
    assert [e.kind for e in entries] == ["mark", "mark"]
    assert entries[0].summary == f"marked {A} pending (was applied)"
    assert entries[1].summary == f"marked {B} applied (was pending)"
    assert p.cli("migrate", "development").code == 0
    assert p.runs() == {A: 2, C: 1}


def test_accept_records_an_edited_files_checksum_so_drift_is_gone(
    any_project: AnyProject,
) -> None:
    p = any_project
    path = p.counting(A)
    assert p.cli("migrate", "development").code == 0
    old = monarch.list_migrations(p.config(), "development").migrations[0].record
    assert old is not None
    path.write_text(path.read_text() + "\n# a comment, deliberately\n")
    strict = p.cli("migrate", "development", "--strict")
    assert strict.code != 0 and "changed" in strict.output

    result = p.cli("accept", "development", "first")

    assert result.code == 0, result.output
    assert f"{A}: checksum {old.checksum[:12]}... ->" in result.stdout
    status = monarch.list_migrations(p.config(), "development").migrations[0]
    assert status.state == "applied" and status.record is not None
    assert status.record.checksum != old.checksum
    assert p.cli("migrate", "development", "--strict").code == 0
    assert p.runs() == {A: 1}
    (entry, run) = monarch.list_history(p.config(), "development").entries
    assert entry.kind == "accept" and run.kind == "migrate"
    assert [(c.what, c.before) for c in entry.changes] == [("checksum", old.checksum)]
    assert entry.changes[0].after == status.record.checksum
    unchanged = p.cli("accept", "development", "first")
    assert unchanged.code == 0 and "nothing to accept" in unchanged.stdout


def test_accept_refuses_a_migration_that_is_not_applied(project: Project) -> None:
    project.counting(A)
    with pytest.raises(UsageError, match="pending, not applied"):
        monarch.accept(project.config(), "development", A)
    assert monarch.list_history(project.config(), "development").entries == ()


def test_repairs_of_a_protected_environment_need_its_name(project: Project) -> None:
    _three(project)
    config = project.config()
    for attempt in (
        lambda: monarch.baseline(config, "production", to=B),
        lambda: monarch.mark(config, "production", A, applied=True),
        lambda: monarch.accept(config, "production", A),
    ):
        with pytest.raises(ConfirmationRequired):
            attempt()
    assert "monarch_migrations" not in project.db.list_collection_names()
    refused = project.process("baseline", "production", "--to", B, "--yes")
    assert refused.returncode == 2, refused.stderr
    done = project.process("baseline", "production", "--to", B, "--confirm", "production")
    assert done.returncode == 0, done.stderr
    assert {r["state"] for r in project.records().values()} == {"applied"}


def test_history_lists_runs_failures_rollbacks_and_repairs_newest_first_as_json(
    any_project: AnyProject,
) -> None:
    p = any_project
    p.counting(A)
    p.write(B, "raise RuntimeError('boom')")
    assert p.cli("migrate", "development").code == 1
    assert p.cli("rollback", "development").code == 0
    assert p.cli("mark", "development", B, "--applied").code == 0

    shown = p.cli("history", "development", "--json")

    assert shown.code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["environment"] == "development"
    entries = data["entries"]
    assert [(e["kind"], e["migration"], e["state"]) for e in entries] == [
        ("mark", None, None),
        ("rollback", A, "rolled_back"),
    ]
    mark = entries[0]
    assert set(mark) == {
        "kind", "at", "summary", "user", "host", "pid", "command", "version", "migration",
        "state", "duration", "error", "source", "changes",
    }
    assert mark["changes"] == [
        {"subject": B, "field": "state", "before": "failed", "after": "applied"}
    ]
    assert mark["user"] == getpass.getuser() and mark["host"] == socket.gethostname()
    assert mark["at"].endswith("+00:00")
    # The failure the mark replaced is in its entry; a run's failure shows with its error.
    p.write(C, "raise RuntimeError('kaboom')")
    assert p.cli("migrate", "development").code == 1
    newest = json.loads(p.cli("history", "development", "--json", "--limit", "1").stdout)
    (failed,) = newest["entries"]
    assert (failed["kind"], failed["migration"], failed["state"]) == ("migrate", C, "failed")
    assert "RuntimeError: kaboom" in failed["error"]
    text = p.cli("history", "development")
    assert text.code == 0
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["WHEN", "WHAT", "WHO", "DETAIL"]
    assert f"{C}: failed: RuntimeError: kaboom" in lines[2]


def test_history_of_an_untouched_environment_is_empty_and_creates_nothing(
    sql_project: SQLProject,
) -> None:
    result = sql_project.cli("history", "development")
    assert result.code == 0 and "No history on development yet." in result.stdout
    if sql_project.engine == "sqlite":
        assert not (sql_project.root / "app.db").exists()
    else:
        assert "monarch_events" not in sql_project.tables()
