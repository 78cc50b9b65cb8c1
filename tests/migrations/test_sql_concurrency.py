"""Never twice, and a killed run leaves nothing half done: eight `monarch migrate` processes at
once, and a SIGKILL in the middle of a migration, on PostgreSQL and SQLite."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.migrations.conftest import SQLProject

pytestmark = pytest.mark.slow

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"
PROCESSES = 8
REPETITIONS = 3


def _drop_everything(project: SQLProject) -> None:
    with project.connect() as conn:
        for table in project.tables():
            conn.execute(f'DROP TABLE "{table}"')


def test_eight_migrate_processes_at_once_run_every_migration_exactly_once(
    sql_project: SQLProject,
) -> None:
    names = [f"2024010100000{i}_step_{i}" for i in range(1, 6)]
    for index, name in enumerate(names):
        if index % 2:
            sql_project.counting_sql(name)
        else:
            sql_project.counting(name, extra="__import__('time').sleep(0.05)")
    waited = 0
    for repetition in range(REPETITIONS):
        _drop_everything(sql_project)
        processes = [sql_project.spawn("migrate", "development") for _ in range(PROCESSES)]
        outputs = [p.communicate(timeout=120) for p in processes]
        for process, (_out, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, f"repetition {repetition}: {err}"
        assert sql_project.runs() == dict.fromkeys(names, 1), f"repetition {repetition}"
        records = sql_project.records()
        assert {r["state"] for r in records.values()} == {"applied"}
        assert {r["run_count"] for r in records.values()} == {1}
        assert sum(out.count("applied ") for out, _ in outputs) == len(names)
        waited += any("waiting up to" in err for _, err in outputs)
    assert waited, "the processes never competed for the lock"


def test_after_sigkill_the_interrupted_migration_was_rolled_back_and_simply_runs_again(
    sql_project: SQLProject, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    sql_project.counting(A)
    # Counts its run, then (the first time only) says so and hangs until it is killed.
    sql_project.counting(
        B,
        extra=f"""
        marker = __import__("pathlib").Path({str(started)!r})
        if not marker.exists():
            marker.write_text("running")
            __import__("time").sleep(60)
        """,
    )
    sql_project.counting_sql(C)
    victim = sql_project.spawn("migrate", "development", "--lock-lease", "30")
    deadline = time.monotonic() + 30
    while not started.exists() and victim.poll() is None:
        assert time.monotonic() < deadline, "the migration never started"
        time.sleep(0.05)
    assert victim.poll() is None, victim.communicate()
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    assert sql_project.records()[B]["state"] == "running"
    assert sql_project.runs() == {A: 1}, "the killed migration's count was committed"

    # The lease had 30 s to run: the lock is free because its holder died.
    survivor = sql_project.process("migrate", "development", "--lock-timeout", "10")
    assert survivor.returncode == 0, survivor.stderr
    assert "took over the migration lock of 'development' from" in survivor.stderr
    assert f"{B} was interrupted: the run by" in survivor.stderr
    assert f"(pid {victim.pid})" in survivor.stderr
    assert (
        "its transaction was rolled back, so none of it was applied and it runs again from "
        "the start"
    ) in survivor.stderr
    assert B in survivor.stdout and C in survivor.stdout
    assert sql_project.runs() == {A: 1, B: 1, C: 1}
    record = sql_project.records()[B]
    assert record["state"] == "applied" and record["run_count"] == 2
