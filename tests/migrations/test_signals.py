"""SIGTERM, SIGHUP and Ctrl-C stop a migration run cleanly, and the words after say what is true."""

from __future__ import annotations

import signal
import time

import pytest

import monarch
from monarch.engines import engine_for
from monarch.history import LockOwner
from tests.migrations.conftest import Project, SQLProject
from tests.migrations.test_lock import _spawn_and_wait_for_marker, wait_for

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
# Writes part of its changes; its first run then hangs until stopped, a second run finishes.
FIRST_RUN_HANGS = """
    self.db.partial.insert_one({"half": True})
    self.db.markers.insert_one({"pid": __import__("os").getpid()})
    if self.db.markers.count_documents({}) == 1:
        __import__("time").sleep(60)
"""
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def lock_holder(project: Project | SQLProject) -> object:
    engine = engine_for(project.config().environment("development"))
    try:
        return engine.migration_lock().holder()
    finally:
        engine.close()


@pytest.mark.parametrize("signum", list(CODES), ids=lambda s: signal.Signals(s).name)
def test_a_signal_mid_migration_records_it_interrupted_frees_the_lock_and_tells_the_truth(
    project: Project, signum: int
) -> None:
    project.counting(A)
    project.write(B, FIRST_RUN_HANGS)
    project.counting(C)
    running = _spawn_and_wait_for_marker(project)
    running.send_signal(signum)
    _, err = running.communicate(timeout=30)

    assert running.returncode == CODES[signum], err
    assert f"Interrupted by {NAMES[signum]}: stopped during {B} after 1 finished ({A})" in err
    assert "it may have made part of its changes" in err
    assert f"Try: check the data, then `monarch migrate development` runs {B} again" in err
    assert "nothing was changed" not in err and "Traceback" not in err
    records = project.records()
    assert records[A]["state"] == "applied"
    assert records[B]["state"] == "interrupted" and records[B]["pid"] == running.pid
    assert C not in records
    assert lock_holder(project) is None
    started = time.monotonic()
    again = project.process("migrate", "development", "--lock-timeout", "0")
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 20  # no wait for a lease
    assert "was interrupted" not in again.stderr  # recorded already, not found running


def test_a_transactional_migration_stopped_by_sigterm_says_none_of_it_was_made(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(A)
    marker = sql_project.root / "started"
    sql_project.write(
        B,
        f"""
        self.conn.execute("CREATE TABLE half (x integer)")
        if not __import__("os").path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            __import__("time").sleep(60)
        """,
        attrs="transactional = True",
    )
    running = sql_project.spawn("migrate", "development")
    wait_for(lambda: marker.exists() or running.poll() is not None, what="the migration")
    running.send_signal(signal.SIGTERM)
    _, err = running.communicate(timeout=30)

    assert running.returncode == 143, err
    assert f"stopped during {B} after 1 finished ({A}), which stay done: its transaction " in err
    assert "none of its changes were made" in err
    assert "half" not in sql_project.tables()
    assert sql_project.records()[B]["state"] == "interrupted"
    assert lock_holder(sql_project) is None
    again = sql_project.process("migrate", "development", "--lock-timeout", "0")
    assert again.returncode == 0, again.stderr


def test_a_signal_while_waiting_for_the_lock_says_nothing_was_changed(project: Project) -> None:
    project.counting(A)
    ghost = LockOwner("token-ghost", "ghost", "nowhere", 99999, "migrate development", "test")
    engine = engine_for(project.config().environment("development"))
    try:
        assert engine.migration_lock().try_acquire(ghost, lease=600).acquired
        waiting = project.spawn("migrate", "development", "--lock-timeout", "60")
        assert waiting.stderr is not None
        assert "waiting up to" in waiting.stderr.readline()
        waiting.send_signal(signal.SIGTERM)
        _, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 143, err
        assert "stopped before running any migration; nothing was changed" in err
        holder = engine.migration_lock().holder()
        assert holder is not None and holder.token == ghost.token  # theirs, untouched
    finally:
        engine.close()
    assert project.runs() == {}


def test_a_library_caller_keeps_pythons_own_signal_handling(project: Project) -> None:
    """Only the command installs handlers: importing and calling monarch changes nothing."""
    before = {s: signal.getsignal(s) for s in CODES}
    project.counting(A)
    monarch.migrate(project.config(), "development")
    assert {s: signal.getsignal(s) for s in CODES} == before


def test_a_rollback_killed_midway_is_retried_by_the_next_rollback(project: Project) -> None:
    project.write(
        A,
        'self.db.things.insert_one({"_id": 1})',
        rollback="""
        self.db.things.delete_many({})
        self.db.markers.insert_one({"pid": __import__("os").getpid()})
        if self.db.markers.count_documents({}) == 1:
            __import__("time").sleep(60)
        """,
    )
    assert project.process("migrate", "development").returncode == 0
    victim = project.spawn("rollback", "development", "--lock-lease", "1")
    wait_for(lambda: project.db.markers.count_documents({}) > 0, what="the rollback to start")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    assert project.records()[A]["state"] == "running"

    again = project.process("rollback", "development", "--lock-timeout", "30")
    assert again.returncode == 0, again.stderr
    assert f"{A} was interrupted" in again.stderr
    assert project.records()[A]["state"] == "rolled_back"
