"""SQLite under stress: dumps taken while the application writes are consistent, and a restore
SIGKILLed at random moments leaves the old file or the new one, never a mix."""

from __future__ import annotations

import io
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.engines.conftest import new_engine, run_worker
from tests.engines.sqlite_helpers import contents, fill, fill_other

ITERATIONS = 15
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_dumps_taken_while_the_application_writes_are_consistent(tmp_path: Path, wal: bool) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, amount INTEGER);"
        "CREATE TABLE log (n INTEGER);"
    )
    conn.executemany("INSERT INTO accounts VALUES (?, 100)", [(i,) for i in range(10)])
    conn.close()
    writer = run_worker("write", f"sqlite:///{path}", "3")
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        engine = new_engine(f"sqlite:///{path}")
        checked = 0
        while writer.poll() is None:
            out = io.BytesIO()
            engine.dump(out)
            copy = tmp_path / f"copy{checked}.db"
            copy.write_bytes(out.getvalue())
            check = sqlite3.connect(copy)
            total, logged = check.execute(
                "SELECT (SELECT sum(amount) FROM accounts), (SELECT count(*) FROM log)"
            ).fetchone()
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            check.close()
            assert total == 1000  # every transfer whole or not at all
            checked += 1
            time.sleep(0.05)
        engine.close()
        _, err = writer.communicate()
        assert writer.returncode == 0, err
    finally:
        writer.kill()
    assert checked >= 3 and logged > 0


def test_a_restore_killed_at_random_moments_leaves_the_old_or_the_new_never_a_mix(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    fill_other(first)
    fill(second, rows=200_000)  # big enough that a restore takes a while
    dumps = {"old": tmp_path / "old.dump", "new": tmp_path / "new.dump"}
    for name, path in (("old", first), ("new", second)):
        dumps[name].write_bytes(path.read_bytes())
    target = tmp_path / "target.db"
    target_url = f"sqlite:///{target}"
    expected = {"old": contents(first), "new": contents(second)}

    started = time.monotonic()
    worker = run_worker("restore", target_url, str(dumps["old"]))
    assert worker.wait(timeout=120) == 0, worker.communicate()[1]
    worker.communicate()
    first_duration = time.monotonic() - started
    started = time.monotonic()
    worker = run_worker("restore", target_url, str(dumps["new"]))
    assert worker.wait(timeout=120) == 0, worker.communicate()[1]
    worker.communicate()
    duration = max(first_duration, time.monotonic() - started)
    assert contents(target) == expected["new"]

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    delays = [duration * 1.3 * (k + rng.random()) / ITERATIONS for k in range(ITERATIONS)]
    rng.shuffle(delays)
    state, seen = "new", []
    for delay in delays:
        incoming = "new" if state == "old" else "old"
        worker = run_worker("restore", target_url, str(dumps[incoming]))
        time.sleep(delay)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.communicate()
        now = contents(target)
        assert now in (expected["old"], expected["new"]), f"a mix after {delay:.2f} s (seed {seed})"
        check = sqlite3.connect(target)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        state = "old" if now == expected["old"] else "new"
        seen.append((round(delay, 2), "completed" if state == incoming else "untouched"))
    print(f"kills (seed {seed}): {seen}")
    assert {outcome for _, outcome in seen} == {"completed", "untouched"}, seen

    engine = new_engine(target_url)
    try:
        engine.recover_restore()
    finally:
        engine.close()
    assert [p.name for p in (tmp_path / "target.db-monarch").iterdir()] == ["restore.lock"]
    assert contents(target) == expected[state]
