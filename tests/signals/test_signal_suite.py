"""SIGINT, SIGTERM, SIGHUP and SIGKILL at random moments of real ``monarch`` processes.

Each case is one command on one engine (and, where a store is involved, one store). A trial
starts the command, waits until it handles signals, sleeps a random part of an undisturbed
run's length, sends a signal, and then checks what a user would: the exit code (130, 143 or
129, or 0 if it had finished), the next command works at once (no lease to wait for after a
clean signal; after SIGKILL the lock's takeover rules apply), nothing is left behind that
``recover`` or ``prune`` does not remove (and after a clean signal nothing at all), no partial
backup is listed, and the target holds its old contents or the new ones, never a mix.

The random moments are seeded (by the case, or ``MONARCH_SIGNAL_SEED``); a failure names the
seed. ``MONARCH_SIGNAL_ROUNDS=N`` runs N times the trials, for a long run.
"""

from __future__ import annotations

import os
import random
import signal
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from monarch import backup, list_backups, migrate, prune, rollback, verify
from monarch.api.backups import recover
from monarch.engines import engine_for
from monarch.errors import RestoreBusy
from monarch.history import Record
from tests.signals.conftest import Bench, lingering_tools, stderr, wait_until_ready

pytestmark = pytest.mark.slow

KILL = signal.SIGKILL
CLEAN = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
NAMES = {s: signal.Signals(s).name for s in (*CLEAN, KILL)}
ROUNDS = int(os.environ.get("MONARCH_SIGNAL_ROUNDS", "1"))
MIGRATIONS = ("20240101000001_first", "20240101000002_second", "20240101000003_third")


@dataclass(frozen=True)
class Case:
    command: str  # backup, restore, copy_db, or migrate (migrate and rollback in turn)
    engine: str
    store: str
    trials: int  # with SIGTERM, SIGINT and SIGHUP in turn
    kills: int = 0

    def __str__(self) -> str:
        return f"{self.command}-{self.engine}-{self.store}"

    def schedule(self) -> list[int]:
        clean = [CLEAN[i % len(CLEAN)] for i in range(self.trials * ROUNDS)]
        return clean + [KILL] * (self.kills * ROUNDS)  # kills last: they leave things behind


CASES = [
    Case("backup", "mongo", "file", 3, 1),
    Case("backup", "mongo", "s3", 2),
    Case("backup", "postgres", "file", 2),
    Case("backup", "postgres", "s3", 2, 1),
    Case("backup", "sqlite", "file", 2),
    Case("backup", "sqlite", "s3", 2),
    Case("restore", "mongo", "file", 3, 1),
    Case("restore", "mongo", "s3", 2),
    Case("restore", "postgres", "file", 2, 1),
    Case("restore", "sqlite", "file", 2, 1),
    Case("copy_db", "mongo", "file", 3, 1),
    Case("copy_db", "postgres", "file", 2, 1),
    Case("copy_db", "sqlite", "file", 2),
    Case("migrate", "mongo", "file", 3, 1),
    Case("migrate", "postgres", "file", 3, 1),
    Case("migrate", "sqlite", "file", 3, 1),
]


@dataclass
class Trial:
    signum: int
    delay: float
    pid: int
    code: int
    err: str

    @property
    def finished(self) -> bool:
        return self.code == 0

    @property
    def stopped(self) -> bool:
        """Stopped by the signal (cleanly, or killed)."""
        return self.code in (128 + self.signum, -KILL)

    def outcome(self) -> str:
        return f"{NAMES[self.signum]}: {'finished first' if self.finished else 'stopped'}"


def strike(bench: Bench, args: list[str], signum: int, delay: float) -> Trial:
    """Run monarch ARGS and send ``signum`` ``delay`` s after it is ready; check its exit."""
    process = bench.spawn(*args)
    ready = wait_until_ready(process)
    time.sleep(max(0.0, ready + delay - time.monotonic()))
    if process.poll() is None:
        process.send_signal(signum)
    code = process.wait(timeout=120)
    trial = Trial(signum, delay, process.pid, code, stderr(process))
    if signum != KILL:  # its pg_dump and pg_restore were ended with it
        assert lingering_tools(bench) == [], f"{' '.join(args)}: child processes outlived it"
    where = f"{' '.join(args)} after {delay:.2f} s: exit {code}; stderr: {trial.err[-2000:]}"
    if signum == KILL:
        assert code in (0, -KILL), where
    else:
        assert code in (0, 128 + signum), where
        if code:
            assert f"Interrupted by {NAMES[signum]}" in trial.err, where
            assert "Traceback" not in trial.err, where
    return trial


def calibrate(bench: Bench, args: list[str]) -> float:
    """One undisturbed run: how long it takes from the moment it handles signals."""
    process = bench.spawn(*args)
    ready = wait_until_ready(process)
    code = process.wait(timeout=180)
    assert code == 0, stderr(process)
    return time.monotonic() - ready


# -- backup


def backup_trials(bench: Bench, rng: random.Random, schedule: list[int]) -> list[Trial]:
    bench.kit.fill("dev", 1)
    args = ["backup", "dev", "--quiet"]
    length = calibrate(bench, args)
    trials = []
    for signum in schedule:
        before = listed(bench)
        trial = strike(bench, args, signum, rng.uniform(0, length * 0.9))
        after = listed(bench)
        new = after - before
        assert before <= after
        assert len(new) == (1 if trial.finished else len(new)) and len(new) <= 1, (new, trial)
        for name in new:  # a listed backup is a complete one
            assert verify(bench.config(), name).ok, name
        if signum != KILL:
            # (A backup listed after a stopped run is complete: the signal came after its
            # manifest, in the last moments of the command.)
            assert bench.store_leftovers() == 0, f"unfinished uploads after {trial}"
            assert stored_names(bench) == after, "objects of an unlisted backup stayed"
        trials.append(trial)
    if KILL in schedule:
        bench.age_store_leftovers()
        prune(bench.config(), keep_last=1000, leftover_age=0)
        assert bench.store_leftovers() == 0
        assert stored_names(bench) == listed(bench)
    return trials


def listed(bench: Bench) -> set[str]:
    return {b.name for b in list_backups(bench.config())}


def stored_names(bench: Bench) -> set[str]:
    """The backup names of every committed object in the store."""
    return {o.key.split(".", 1)[0] for o in bench.store().list()}


# -- restore and copy_db


def replace_trials(
    bench: Bench,
    rng: random.Random,
    schedule: list[int],
    expected: dict[str, str],
    args: Callable[[str], list[str]],
) -> list[Trial]:
    """Trials of a command that replaces ``staging`` with one of two sources in turn
    (``expected``: source -> the contents it gives)."""
    first, second = expected
    length = calibrate(bench, args(first))
    current = first
    assert bench.kit.state("staging") == expected[first]
    trials = []
    for signum in schedule:
        wanted = second if current == first else first
        trial = strike(bench, args(wanted), signum, rng.uniform(0, length * 0.9))
        left = bench.kit.leftovers("staging")
        said = recover_after(bench, trial)
        # After a clean signal nothing is left (a swap under way is finished first).
        assert signum == KILL or not left, f"left behind after {trial}: {left}"
        assert signum == KILL or said is None, f"recover found work after {trial}: {said}"
        assert bench.kit.leftovers("staging") == [], f"left behind after recover: {trial}"
        now = bench.kit.state("staging")
        describe = getattr(bench.kit, "describe", lambda env: "")
        assert now in (expected[current], expected[wanted]), (
            f"a mix after {trial} and recover ({said}): {describe('staging')}"
        )
        assert now == expected[wanted] or not trial.finished, f"not restored: {trial}"
        current = wanted if now == expected[wanted] else current
        trials.append(trial)
    return trials


def recover_after(bench: Bench, trial: Trial) -> str | None:
    """``recover`` staging at once; after SIGKILL, once the server noticed the death (a killed
    PostgreSQL restore holds its lock until the server ends its session)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return recover(bench.config(), "staging")
        except RestoreBusy:
            if trial.signum != KILL or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def restore_trials(bench: Bench, rng: random.Random, schedule: list[int]) -> list[Trial]:
    expected = {}
    for version in (1, 2):
        bench.kit.fill("dev", version)
        expected[backup(bench.config(), "dev").name] = bench.kit.state("dev")
    return replace_trials(
        bench, rng, schedule, expected, lambda name: ["restore", f"{name}:staging", "--quiet"]
    )


def copy_trials(bench: Bench, rng: random.Random, schedule: list[int]) -> list[Trial]:
    bench.kit.fill("dev", 1)
    bench.kit.fill("alt", 2)
    bench.kit.fill("staging", 3)
    expected = {"dev": bench.kit.state("dev"), "alt": bench.kit.state("alt")}
    return replace_trials(
        bench, rng, schedule, expected, lambda env: ["copy_db", f"{env}:staging", "--quiet"]
    )


# -- migrate and rollback

MONGO_MIGRATION = """
import time
from monarch import MongoMigration

class M(MongoMigration):
    def run(self):
        for i in range(8):
            self.db["steps_" + self.name].update_one(
                {"_id": i}, {"$set": {"m": self.name}}, upsert=True)
            time.sleep(0.04)

    def rollback(self):
        for i in range(8):
            self.db["steps_" + self.name].delete_one({"_id": i})
            time.sleep(0.04)
        self.db.drop_collection("steps_" + self.name)
"""

SQL_MIGRATION = """
import time
from monarch import {base}

class M({base}):
    transactional = True

    def run(self):
        table = "steps_" + self.name
        self.conn.execute(f'CREATE TABLE "{{table}}" (id integer PRIMARY KEY)')
        for i in range(8):
            self.conn.execute(f'INSERT INTO "{{table}}" VALUES ({{i}})')
            time.sleep(0.04)

    def rollback(self):
        table = "steps_" + self.name
        for i in range(8):
            self.conn.execute(f'DELETE FROM "{{table}}" WHERE id = {{i}}')
            time.sleep(0.04)
        self.conn.execute(f'DROP TABLE "{{table}}"')
"""


def migrate_trials(bench: Bench, rng: random.Random, schedule: list[int]) -> list[Trial]:
    """Migrate and rollback in turn; after each trial the library finishes what it began."""
    if bench.engine == "mongo":
        text = MONGO_MIGRATION
    else:
        base = "PostgresMigration" if bench.engine == "postgres" else "SQLiteMigration"
        text = SQL_MIGRATION.format(base=base)
    for name in MIGRATIONS:
        (bench.root / "migrations" / f"{name}.py").write_text(text)
    bench.kit.fill("dev", 1)
    states = [bench.kit.state("dev", app_only=True)]  # states[k]: the first k applied
    for name in MIGRATIONS:
        migrate(bench.config(), "dev", to=name)
        states.append(bench.kit.state("dev", app_only=True))
    length = calibrate(bench, ["rollback", "dev", "--steps", "3"])
    assert bench.kit.state("dev", app_only=True) == states[0]
    trials = []
    for index, signum in enumerate(schedule):
        command = "migrate" if index % 2 == 0 else "rollback"
        args = [command, "dev", "--lock-timeout", "0"]
        args += ["--steps", "3"] if command == "rollback" else []
        args += ["--lock-lease", "2"] if signum == KILL else []
        before = bench.kit.state("dev", app_only=True)
        trial = strike(bench, args, signum, rng.uniform(0, length * 0.9))
        check_history(bench, trial, states, before)
        # The next command works at once after a clean signal (no lease to wait for).
        wait = 30.0 if signum == KILL else 0.0
        if command == "migrate":
            migrate(bench.config(), "dev", lock_timeout=wait)
            wanted = states[-1]
        else:
            rollback(bench.config(), "dev", steps=3, lock_timeout=wait)
            wanted = states[0]
        assert bench.kit.state("dev", app_only=True) == wanted, (
            f"{command} after {trial} did not finish: {history(bench)}"
        )
        trials.append(trial)
    return trials


def history(bench: Bench) -> list[tuple[str, str, str]]:
    engine = engine_for(bench.config().environment("dev"))
    try:
        return [(r.name, r.action, r.state) for r in engine.history().records().values()]
    finally:
        engine.close()


def check_history(bench: Bench, trial: Trial, states: list[str], before: str) -> None:
    """After a stopped migrate or rollback: the history and the data agree, and so do the
    words printed."""
    engine = engine_for(bench.config().environment("dev"))
    try:
        records: dict[str, Record] = engine.history().records()
        holder = engine.migration_lock().holder()
    finally:
        engine.close()
    applied = [n for n in MIGRATIONS if n in records and records[n].state == "applied"]
    k = len(applied)
    assert applied == list(MIGRATIONS[:k]), f"applied out of order after {trial}: {applied}"
    unfinished = [r for r in records.values() if r.state in ("interrupted", "running")]
    now = bench.kit.state("dev", app_only=True)
    if trial.signum != KILL:
        assert holder is None, f"the lock is still held after {trial}: {holder}"
        assert not [r for r in unfinished if r.state == "running"], f"running after {trial}"
    if bench.engine != "mongo":  # transactional: whole migrations or nothing
        # A rollback stopped midway was itself rolled back: that migration's data stays.
        undoing = k < len(MIGRATIONS) and any(
            r.name == MIGRATIONS[k] and r.action == "rollback" for r in unfinished
        )
        whole = k + 1 if undoing else k
        assert now == states[whole], f"the data is not that of {whole} migrations: {trial}"
    elif now != states[k]:  # the one it stopped in may have made part of its changes
        assert [r.name for r in unfinished] == [MIGRATIONS[k]], f"{trial}: {unfinished}"
    if trial.code == 128 + trial.signum:
        mine = [r for r in unfinished if r.pid == trial.pid]
        if mine and "none of it ran" in trial.err:
            pass  # stopped as it was about to begin
        elif mine and bench.engine == "mongo":
            assert "it may have made part of its changes" in trial.err, trial
        elif mine:
            assert "none of its changes were made" in trial.err, trial
        if "nothing was changed" in trial.err:
            assert now == before, f"said nothing was changed, but something was: {trial}"


RUNNERS = {
    "backup": backup_trials,
    "restore": restore_trials,
    "copy_db": copy_trials,
    "migrate": migrate_trials,
}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_signal_at_any_moment_leaves_nothing_half_done(
    case: Case, make_bench: Callable[..., Bench]
) -> None:
    seed = int(os.environ.get("MONARCH_SIGNAL_SEED") or zlib.crc32(str(case).encode()))
    rng = random.Random(seed)
    bench = make_bench(case.engine, case.store)
    schedule = case.schedule()
    try:
        trials = RUNNERS[case.command](bench, rng, schedule)
    except AssertionError as exc:
        rerun = f"(seed {seed}: rerun with MONARCH_SIGNAL_SEED={seed})"
        raise AssertionError(f"{exc}\n{rerun}") from exc
    assert len(trials) == len(schedule)
    outcomes: Counter[str] = Counter(t.outcome() for t in trials)
    print(f"\n{case}: {len(trials)} trials (seed {seed}): {dict(sorted(outcomes.items()))}")

