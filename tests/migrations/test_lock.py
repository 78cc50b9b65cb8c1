"""Never twice, never silently stuck: the lock under real concurrency, SIGKILL, stale locks."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monarch.engines import engine_for
from monarch.engines.mongo import MongoEngine
from monarch.history import Acquisition, LockOwner
from tests.migrations.conftest import Project

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def owner(name: str, pid: int = 99999) -> LockOwner:
    return LockOwner(f"token-{name}", name, "nowhere", pid, "migrate development", "test")


@pytest.fixture
def engines(project: Project) -> Iterator[list[MongoEngine]]:
    """Eight independent connections to the project's database."""
    made = [engine_for(project.config().environment("development")) for _ in range(8)]
    yield made  # type: ignore[misc]
    for engine in made:
        engine.close()


def race(engines: list[MongoEngine], lease: float) -> list[Acquisition]:
    """Every engine tries to take the lock at the same instant."""
    barrier = threading.Barrier(len(engines))
    results: list[Acquisition | None] = [None] * len(engines)
    locks = [engine.migration_lock() for engine in engines]
    for lock in locks:
        lock.holder()  # connect and measure the clock before the start line

    def attempt(index: int) -> None:
        barrier.wait()
        results[index] = locks[index].try_acquire(owner(f"racer{index}"), lease)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, result in enumerate(results):
        if result is not None and result.acquired:
            locks[index].release(owner(f"racer{index}"))
    return [r for r in results if r is not None]


def test_of_eight_simultaneous_takers_exactly_one_gets_the_lock_every_time(
    engines: list[MongoEngine],
) -> None:
    for _ in range(15):
        results = race(engines, lease=30)
        assert sum(r.acquired for r in results) == 1


def test_an_expired_lease_is_taken_over_by_exactly_one_of_eight(
    project: Project, engines: list[MongoEngine]
) -> None:
    lock = engines[0].migration_lock()
    for round in range(5):
        assert lock.try_acquire(owner(f"dead{round}"), lease=30).acquired
        # The holder dies; its lease runs out.
        past = datetime.now(UTC) - timedelta(seconds=5)
        project.db.monarch_lock.update_many({"released_at": None}, {"$set": {"expires_at": past}})
        results = race(engines, lease=30)
        winners = [r for r in results if r.acquired]
        assert len(winners) == 1
        assert winners[0].previous is not None and winners[0].previous.user == f"dead{round}"


def test_a_stale_taker_that_inserts_a_lower_epoch_backs_off(
    project: Project, engines: list[MongoEngine]
) -> None:
    first, second = engines[0].migration_lock(), engines[1].migration_lock()
    assert second.try_acquire(owner("current"), lease=30).acquired
    # A process that read the lock long ago and now inserts the next epoch it saw.
    project.db.monarch_lock.insert_one(
        {
            "_id": "migrate:000000000000",
            "lock": "migrate",
            "epoch": 0,
            "token": "token-stale",
            "expires_at": datetime.now(UTC) + timedelta(seconds=30),
            "acquired_at": datetime.now(UTC),
            "released_at": None,
        }
    )
    holder = first.holder()
    assert holder is not None and holder.user == "current"
    assert not first.try_acquire(owner("stale"), lease=30).acquired


def _spawn_and_wait_for_marker(project: Project, *args: str) -> subprocess.Popen[str]:
    process = project.spawn("migrate", "development", *args)
    wait_for(
        lambda: project.db.markers.count_documents({}) > 0 or process.poll() is not None,
        what="the migration to start",
    )
    assert process.poll() is None, process.communicate()
    return process


SLOW = """
    self.db.markers.insert_one({{"pid": __import__("os").getpid()}})
    __import__("time").sleep({seconds})
"""


GATED = """
    self.db.markers.insert_one({"pid": __import__("os").getpid()})
    for _ in range(600):  # until the test says go (at most a minute)
        if self.db.go.find_one():
            break
        __import__("time").sleep(0.05)
"""


def test_a_second_migrate_fails_naming_the_holder_or_waits_for_it(project: Project) -> None:
    project.write(A, GATED)
    project.counting(B)
    first = _spawn_and_wait_for_marker(project, "--lock-lease", "1")
    # Well past the 1 s lease: only the heartbeat keeps the lock held.
    time.sleep(2)
    refused = project.process("migrate", "development", "--lock-timeout", "0")
    assert refused.returncode == 1
    assert "environment 'development' is locked by" in refused.stderr
    assert f"(pid {first.pid}, `migrate development`)" in refused.stderr
    assert "monarch unlock development" in refused.stderr
    waiter = project.spawn("migrate", "development", "--lock-timeout", "60")
    assert waiter.stderr is not None
    notice = waiter.stderr.readline()
    assert "waiting up to" in notice and f"pid {first.pid}" in notice
    project.db.go.insert_one({})
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert "up to date" in out
    first.communicate(timeout=30)
    assert first.returncode == 0
    assert project.runs() == {B: 1}


def test_after_sigkill_the_next_migrate_takes_over_and_reports_the_interrupted_one(
    project: Project,
) -> None:
    project.counting(A)
    project.write(
        B,
        """
        n = self.db.runs.find_one_and_update(
            {"_id": self.name}, {"$inc": {"n": 1}}, upsert=True, return_document=True
        )["n"]
        self.db.markers.insert_one({"attempt": n})
        if n == 1:
            __import__("time").sleep(60)
        """,
    )
    project.counting(C)
    victim = _spawn_and_wait_for_marker(project, "--lock-lease", "2")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    assert project.records()[B]["state"] == "running"
    survivor = project.process("migrate", "development", "--lock-timeout", "30")
    assert survivor.returncode == 0, survivor.stderr
    assert "took over the migration lock of 'development' from" in survivor.stderr
    assert f"{B} was interrupted" in survivor.stderr
    assert f"(pid {victim.pid})" in survivor.stderr
    assert B in survivor.stdout and C in survivor.stdout
    assert project.runs() == {A: 1, B: 2, C: 1}
    record = project.records()[B]
    assert record["state"] == "applied" and record["run_count"] == 2


def test_a_holder_killed_on_this_machine_is_taken_over_without_waiting_for_its_lease(
    project: Project,
) -> None:
    project.write(
        B,
        """
        n = self.db.runs.find_one_and_update(
            {"_id": self.name}, {"$inc": {"n": 1}}, upsert=True, return_document=True
        )["n"]
        self.db.markers.insert_one({"attempt": n})
        if n == 1:
            __import__("time").sleep(60)
        """,
    )
    victim = _spawn_and_wait_for_marker(project, "--lock-lease", "600")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)

    started = time.monotonic()
    survivor = project.process("migrate", "development", "--lock-timeout", "20")

    assert survivor.returncode == 0, survivor.stderr
    assert time.monotonic() - started < 20  # not the 600 s lease
    assert "took over the migration lock of 'development' from" in survivor.stderr
    assert f"(pid {victim.pid})" in survivor.stderr


def test_interrupted_state_is_shown_until_the_next_migrate(project: Project) -> None:
    project.write(B, SLOW.format(seconds=60))
    victim = _spawn_and_wait_for_marker(project, "--lock-lease", "1")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    time.sleep(1.2)  # the lease runs out
    status = project.cli("list_migrations", "development")
    row = next(line for line in status.stdout.splitlines() if B in line)
    assert "interrupted" in row
    assert "Lock expired" in status.stdout
    assert project.cli("list_migrations", "development", "--check").code == 3


def test_a_stale_lock_blocks_until_unlock_clears_it(project: Project) -> None:
    project.counting(A)
    engine = engine_for(project.config().environment("development"))
    try:
        assert engine.migration_lock().try_acquire(owner("ghost"), lease=600).acquired
    finally:
        engine.close()
    blocked = project.cli("migrate", "development", "--lock-timeout", "0")
    assert blocked.code == 1
    assert "locked by ghost@nowhere (pid 99999" in blocked.stderr
    cleared = project.cli("unlock", "development", "--yes")
    assert cleared.code == 0, cleared.output
    assert "Cleared the migration lock of development, held by ghost@nowhere" in cleared.stdout
    assert project.cli("unlock", "development", "--yes").stdout.startswith(
        "The migration lock of development was free"
    )
    assert project.cli("migrate", "development", "--lock-timeout", "0").code == 0
    assert project.runs() == {A: 1}


def test_a_run_whose_lock_is_cleared_stops_before_the_next_migration(project: Project) -> None:
    project.write(A, GATED)
    project.counting(B)
    running = _spawn_and_wait_for_marker(project, "--lock-lease", "1")
    assert project.cli("unlock", "development", "--yes").code == 0
    time.sleep(1)  # three heartbeats: the run notices
    project.db.go.insert_one({})
    _, err = running.communicate(timeout=30)
    assert running.returncode == 1
    assert "lost the migration lock of 'development'" in err
    assert project.records()[A]["state"] == "applied"
    assert project.runs() == {}


@pytest.mark.slow
def test_eight_migrate_processes_at_once_run_every_migration_exactly_once(
    project: Project,
) -> None:
    names = [f"2024010100000{i}_step_{i}" for i in range(1, 6)]
    for name in names:
        project.counting(name, extra="__import__('time').sleep(0.05)")
    waited = 0
    for repetition in range(5):
        for collection in project.db.list_collection_names():
            project.db.drop_collection(collection)
        processes = [project.spawn("migrate", "development") for _ in range(8)]
        outputs = [p.communicate(timeout=120) for p in processes]
        for process, (_out, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, f"repetition {repetition}: {err}"
        assert project.runs() == dict.fromkeys(names, 1), f"repetition {repetition}"
        records = project.records()
        assert {r["state"] for r in records.values()} == {"applied"}
        assert {r["run_count"] for r in records.values()} == {1}
        applied_lines = sum(out.count("applied ") for out, _ in outputs)
        assert applied_lines == len(names)
        waited += any("waiting up to" in err for _, err in outputs)
    assert waited, "the processes never competed for the lock"
