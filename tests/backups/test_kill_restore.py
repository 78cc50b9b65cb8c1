"""SIGKILL a real ``monarch restore`` process at random moments: after recovery the target is
always exactly its old contents or exactly the backup, never a mix, never with leftovers."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from pymongo.database import Database

from monarch import backup
from monarch.api.backups import recover
from monarch.engines.mongo.journal import JOURNAL
from tests.backups.conftest import environ
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    leftovers,
    snapshot,
    two_dbs_fixture,
)

ITERATIONS = 18
NAMES = {
    "plain": ("users", "events", "only_in_v"),
    # The test server cannot rename these: the swap copies them, so it lasts longer (and the
    # data is smaller, to keep the test's time).
    "dotted": ("fs.files", "fs.chunks", "only.in v"),
}


def fill(db: Database[Any], version: int, names: tuple[str, str, str] = NAMES["plain"]) -> None:
    """A database big enough that a restore takes a second or two; ``version`` varies it."""
    users, events, only = names
    scale = 1 if names == NAMES["plain"] else 4
    # Few, large documents: FerretDB reads documents back (to compare) slower than it writes.
    db[users].insert_many(
        {"_id": i, "email": f"u{i}@example.com", "v": version, "bio": "b" * (500 + i % 1500)}
        for i in range(4_000 // scale)
    )
    db[users].create_index("email", unique=True, name="email_1")
    db[events].insert_many({"user": i % 4_000, "kind": f"k{i % 7}", "v": version,
                            "payload": "p" * 400} for i in range(8_000 // scale))
    db[events].create_index([("user", 1), ("kind", 1)], name="user_kind")
    db[f"{only}{version}"].insert_many({"n": i} for i in range(100 + version))


def restore_command(two_dbs: TwoDbs, name: str, extra: Sequence[str] = ()) -> list[str]:
    """``monarch restore NAME:staging --quiet``, with ``extra`` options (a selection)."""
    return [sys.executable, "-m", "monarch", "--config", str(two_dbs.config_path), "restore",
            f"{name}:staging", "--quiet", *extra]


def start_and_wait_for_journal(
    two_dbs: TwoDbs, name: str, stderr: int = subprocess.DEVNULL, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], float]:
    """Start a restore process; return it once its journal exists (it has begun), and when."""
    journal = two_dbs.target[JOURNAL]
    process = subprocess.Popen(restore_command(two_dbs, name, extra), cwd=two_dbs.root,
                               env=environ(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=stderr)
    while process.poll() is None and journal.find_one({}, {"_id": 1}) is None:
        time.sleep(0.002)
    return process, time.monotonic()


def wait_for_swap(two_dbs: TwoDbs, process: subprocess.Popen[bytes]) -> None:
    journal = two_dbs.target[JOURNAL]
    while process.poll() is None:
        doc = journal.find_one({}, {"state": 1})
        if doc is None or doc["state"] != "loading":
            return
        time.sleep(0.001)


def calibrate(two_dbs: TwoDbs, name: str, extra: Sequence[str] = ()) -> tuple[float, float, float]:
    """One undisturbed restore, watched: from its journal's appearance, when its swap starts
    (the journal leaves ``loading``) and ends (the journal is gone), and when it exits."""
    journal = two_dbs.target[JOURNAL]
    process, began = start_and_wait_for_journal(two_dbs, name, extra=extra)
    swap_from = swap_to = None
    while process.poll() is None:
        doc = journal.find_one({}, {"state": 1})
        at = time.monotonic() - began
        if swap_from is None and doc is not None and doc["state"] != "loading":
            swap_from = at
        if swap_to is None and doc is None:
            swap_to = at
            swap_from = swap_from or at
        time.sleep(0.002)
    whole = time.monotonic() - began
    assert process.returncode == 0
    return whole, swap_from or whole, swap_to or whole


def kill_restore_at_a_moment(
    two_dbs: TwoDbs, name: str, iteration: int, rng: random.Random,
    timings: tuple[float, float, float], *, extra: Sequence[str] = (),
) -> tuple[int, float]:
    """Start a restore of ``name`` and SIGKILL it: every third iteration inside its swap, the
    others anywhere from its start, or late (index builds, swap, exit). ``timings`` are
    :func:`calibrate`'s. Returns the exit code and the delay (-1: killed inside the swap)."""
    whole, swap_from, swap_to = timings
    delay = -1.0
    process, began = start_and_wait_for_journal(two_dbs, name, extra=extra)
    if iteration % 3 == 2:
        # The swap lasts milliseconds, too short to hit by timing alone, so watch the journal
        # for the swap to begin and kill at once (or a moment later).
        wait_for_swap(two_dbs, process)
        time.sleep(rng.uniform(0, max(0.0, swap_to - swap_from)))
    else:
        delay = rng.uniform(0, whole) if iteration % 3 == 0 else rng.uniform(0.5, 1) * whole
        time.sleep(max(0.0, began + delay - time.monotonic()))
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=60), delay


@pytest.mark.slow
@pytest.mark.timeout(600)  # 18 restores and recoveries, on a machine that may be busy
@pytest.mark.parametrize("kind", list(NAMES))
def test_restore_killed_at_random_moments_leaves_old_or_new_never_a_mix(
    two_dbs: TwoDbs, kind: str
) -> None:
    config = two_dbs.config()
    names = NAMES[kind]
    fill(two_dbs.source, 1, names)
    first = backup(config, "development").name
    expected = {first: snapshot(two_dbs.source)}
    for name in two_dbs.source.list_collection_names():
        two_dbs.source.drop_collection(name)
    fill(two_dbs.source, 2, names)
    second = backup(config, "development").name
    expected[second] = snapshot(two_dbs.source)
    assert expected[first] != expected[second]

    whole, swap_from, swap_to = calibrate(two_dbs, first)
    current = first
    assert snapshot(two_dbs.target) == expected[first]

    rng = random.Random(20260101)
    outcomes: Counter[str] = Counter()
    for iteration in range(ITERATIONS):
        wanted = second if current == first else first
        code, delay = kill_restore_at_a_moment(two_dbs, wanted, iteration, rng,
                                               (whole, swap_from, swap_to))

        said = recover(config, "staging")

        now = snapshot(two_dbs.target)
        assert leftovers(two_dbs.target) == [], f"iteration {iteration}: leftovers"
        if now == expected[wanted]:
            current = wanted
            kind = ("finished before the kill" if code == 0 else
                    "rolled forward" if said and "during its swap" in said else
                    "killed after the swap")
        else:
            assert now == expected[current], (
                f"iteration {iteration}: after a kill at {delay:.2f}s and recovery ({said}), "
                "the target is neither its old contents nor the backup"
            )
            kind = "rolled back" if said else "killed before it began (unexpected here)"
        outcomes[kind] += 1
    print(f"\nrestore of {whole:.2f}s from its journal (swap at {swap_from:.2f}-{swap_to:.2f}s) "
          f"killed {ITERATIONS} times: {dict(outcomes)}")
    assert sum(outcomes.values()) == ITERATIONS
