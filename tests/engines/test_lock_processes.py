"""The migration lock across real processes: atomic under a race, freed when its holder dies."""

from __future__ import annotations

import json
import os
import selectors
import signal
import time
from pathlib import Path

import pytest

from monarch.history import LockOwner
from tests.engines.conftest import Kit, run_worker

RACERS = 8
pytestmark = pytest.mark.slow


def _expect_line(process: object, wanted: str, timeout: float = 60) -> str:
    assert process.stdout is not None  # type: ignore[attr-defined]
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            line = process.stdout.readline()  # type: ignore[attr-defined]
            if not line:
                break
            if wanted in line:
                return str(line)
    err = process.stderr.read() if process.poll() is not None else ""  # type: ignore[attr-defined]
    raise AssertionError(f"worker never printed {wanted!r}; stderr: {err}")


@pytest.mark.parametrize("round_", [1, 2])
def test_of_eight_processes_racing_for_the_lock_exactly_one_wins(
    kit: Kit, tmp_path: Path, round_: int
) -> None:
    if round_ == 2:
        # The second round races over a lock that was held and released before.
        lock = kit.make().migration_lock()
        warmup = LockOwner("warmup", "t", "t", 1, "warmup", "0")
        assert lock.try_acquire(warmup, 30).acquired
        lock.release(warmup)
    workers = [run_worker("race", kit.url, str(tmp_path)) for _ in range(RACERS)]
    try:
        for worker in workers:
            _expect_line(worker, "ready")
        (tmp_path / "go").touch()
        outcomes = [json.loads(_expect_line(worker, "acquired")) for worker in workers]
        winners = [o["pid"] for o in outcomes if o["acquired"]]
        assert len(winners) == 1, outcomes
        holder = kit.make().migration_lock().holder()
        assert holder is not None and holder.pid == winners[0]
    finally:
        (tmp_path / "done").touch()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            finally:
                worker.kill()
                worker.communicate()
    assert kit.make().migration_lock().holder() is None


@pytest.mark.parametrize("kit", ["postgres", "sqlite"], indirect=True)
def test_a_killed_holder_frees_the_lock_at_once_and_is_named_as_previous(kit: Kit) -> None:
    worker = run_worker("hold", kit.url)
    try:
        _expect_line(worker, "acquired")
        holder = kit.make().migration_lock().holder()
        assert holder is not None and holder.pid == worker.pid and not holder.expired
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        killed = time.monotonic()
        lock = kit.make().migration_lock()
        me = LockOwner("me", "t", "t", os.getpid(), "migrate", "0")
        while not (outcome := lock.try_acquire(me, 30)).acquired:
            assert time.monotonic() - killed < 10, "the dead holder's lock was never freed"
            time.sleep(0.05)
        # Its lease had 60 s to run: the lock came free because the holder died, not by expiry.
        assert time.monotonic() - killed < 10
        assert outcome.previous is not None and outcome.previous.pid == worker.pid
        assert outcome.previous.expired
        lock.release(me)
    finally:
        worker.kill()
        worker.communicate()
