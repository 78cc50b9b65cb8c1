"""SIGKILL a real ``monarch restore`` process at moments spread over its phases: after
recovery the target is always exactly its old contents or exactly the backup, never a mix,
never with leftovers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo.database import Database

from monarch import backup
from monarch.api.backups import recover
from monarch.engines.mongo.journal import JOURNAL
from tests.backups.conftest import environ
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    Snapshot,
    TwoDbs,
    leftovers,
    snapshot,
    two_dbs_fixture,
)

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


# A restore's phases as its journal shows them, in order ("done": the journal is gone).
PHASES = ("loading", "aside", "placing", "dropping", "done")


def wait_for_phase(two_dbs: TwoDbs, process: subprocess.Popen[bytes], phase: str) -> None:
    """Return once the restore's journal shows ``phase`` or a later one (or it exited)."""
    journal = two_dbs.target[JOURNAL]
    wanted = PHASES.index(phase)
    while process.poll() is None:
        doc = journal.find_one({}, {"state": 1})
        state = "done" if doc is None else doc["state"]
        # ("undoing", never expected here, counts as part of the swap.)
        if PHASES.index(state if state in PHASES else "placing") >= wanted:
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


@dataclass(frozen=True)
class Moment:
    """When to SIGKILL a restore: ``after`` seconds once its journal shows ``phase`` (for
    ``loading``: from the journal's appearance)."""

    phase: str
    after: float = 0.0

    def __str__(self) -> str:
        return f"{self.after:.2f}s into {self.phase}"


def kill_moments(timings: tuple[float, float, float], rng: random.Random) -> list[Moment]:
    """Few kill moments, one in each part of a restore (:func:`calibrate`'s ``timings``): as it
    begins, a third and two thirds into its loading, as each step of its swap begins and a
    moment into it (the swap may last milliseconds, too short to hit by timing alone: these
    watch the journal), once the swap is done, and two anywhere (``rng``)."""
    whole, swap_from, swap_to = timings
    return [
        Moment("loading"),
        Moment("loading", swap_from / 3),
        Moment("loading", swap_from * 2 / 3),
        Moment("aside"),
        Moment("aside", (swap_to - swap_from) / 3),
        Moment("placing"),
        Moment("dropping"),
        Moment("done"),
        Moment("loading", rng.uniform(0, whole)),
        Moment("loading", rng.uniform(0, whole)),
    ]


def kill_seed(default: int) -> int:
    """The seed of a kill loop's random moments: ``default``, or ``MONARCH_KILL_SEED``."""
    return int(os.environ.get("MONARCH_KILL_SEED") or default)


def kill_restore_at_a_moment(
    two_dbs: TwoDbs, name: str, moment: Moment, *, extra: Sequence[str] = ()
) -> int:
    """Start a restore of ``name`` and SIGKILL it at ``moment``; return its exit code."""
    process, _ = start_and_wait_for_journal(two_dbs, name, extra=extra)
    wait_for_phase(two_dbs, process, moment.phase)
    time.sleep(moment.after)
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=60)


def kill_and_recover_in_turn(
    two_dbs: TwoDbs, expected: dict[str, Snapshot], seed: int, *,
    extra: Sequence[str] = (), check: Callable[[Snapshot, str], None] = lambda now, where: None,
) -> None:
    """Restore the two backups of ``expected`` (name -> the target's contents it gives; the
    target holds the first's) in turn, each killed at one of :func:`kill_moments` and
    recovered: then the target is exactly one of them, with no leftovers, and ``check(now,
    where)`` holds."""
    config = two_dbs.config()
    first, second = expected
    timings = calibrate(two_dbs, first, extra)
    assert snapshot(two_dbs.target) == expected[first]
    moments = kill_moments(timings, random.Random(seed))
    current = first
    outcomes: Counter[str] = Counter()
    for moment in moments:
        wanted = second if current == first else first
        code = kill_restore_at_a_moment(two_dbs, wanted, moment, extra=extra)

        said = recover(config, "staging")

        where = (f"after a kill {moment} and recovery ({said}); "
                 f"seed {seed}: rerun with MONARCH_KILL_SEED={seed}")
        now = snapshot(two_dbs.target)
        assert leftovers(two_dbs.target) == [], f"leftovers {where}"
        check(now, where)
        if now == expected[wanted]:
            current = wanted
            outcome = ("finished before the kill" if code == 0 else
                       "rolled forward" if said and "during its swap" in said else
                       "killed after the swap")
        else:
            assert now == expected[current], (
                f"{where}: the target is neither its old contents nor the backup"
            )
            outcome = "rolled back" if said else "killed before it began"
        outcomes[outcome] += 1
    whole, swap_from, swap_to = timings
    print(f"\nrestore of {whole:.2f}s from its journal (swap at {swap_from:.2f}-{swap_to:.2f}s) "
          f"killed {len(moments)} times (seed {seed}): {dict(outcomes)}")
    assert sum(outcomes.values()) == len(moments)


@pytest.mark.slow
@pytest.mark.timeout(600)  # restores and recoveries, on a machine that may be busy
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

    kill_and_recover_in_turn(two_dbs, expected, kill_seed(20260101))
