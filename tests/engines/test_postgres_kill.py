"""A PostgreSQL restore SIGKILLed at random moments leaves the target all old or all new."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from monarch.engines.postgres.lock import advisory_key
from tests.engines.conftest import new_engine, run_worker
from tests.engines.pg_helpers import contents, databases, fill_old
from tests.servers import PostgresServer

ITERATIONS = 15
pytestmark = pytest.mark.slow


@pytest.fixture
def make_db(postgres_server: PostgresServer) -> Iterator[Any]:
    names: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        names.append(name)
        return postgres_server.create_database(name)

    yield make
    for name in names:
        postgres_server.drop_database(name)


def fill_big(url: str) -> None:
    """Enough rows that pg_restore takes about a second."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big (id int PRIMARY KEY, payload text);"
            "INSERT INTO big SELECT i, md5(i::text) || repeat('x', 50) "
            "FROM generate_series(1, 300000) i;"
            "CREATE INDEX big_payload ON big (payload);"
            "CREATE TABLE public.settings (key text PRIMARY KEY, value text);"
            "INSERT INTO public.settings VALUES ('theme', 'new');"
        )


def dump_to(url: str, path: Path) -> None:
    engine = new_engine(url)
    try:
        with path.open("wb") as out:
            engine.dump(out)
    finally:
        engine.close()


def wait_for_restore_lock_free(server_uri: str, database: str) -> None:
    """A killed restore's session ends when the server notices; wait for that."""
    key = advisory_key(f"restore/{database}")
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    deadline = time.monotonic() + 30
    with psycopg.connect(server_uri, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid::int8 = %s AND objid::int8 = %s",
                (high, low),
            ).fetchone()
            if row == (0,):
                return
            time.sleep(0.05)
    raise AssertionError("the killed restore's session never ended")


def run_restore(url: str, dump: Path) -> float:
    started = time.monotonic()
    worker = run_worker("restore", url, str(dump))
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    return time.monotonic() - started


def test_a_restore_killed_at_random_moments_leaves_the_old_or_the_new_never_a_mix(
    make_db: Any, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    first, second = make_db(), make_db()
    fill_old(first)
    fill_big(second)
    dumps = {"old": tmp_path / "old.dump", "new": tmp_path / "new.dump"}
    dump_to(first, dumps["old"])
    dump_to(second, dumps["new"])
    target = make_db()
    name = target.rsplit("/", 1)[1]
    # What the target holds after each restore completes.
    slowest = run_restore(target, dumps["new"])
    expected = {"new": contents(target)}
    duration = max(slowest, run_restore(target, dumps["old"]))
    expected["old"] = contents(target)
    assert expected["old"] != expected["new"]

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    # Stratified: every part of the restore, from start to after its end, gets kills.
    delays = [duration * 1.3 * (k + rng.random()) / ITERATIONS for k in range(ITERATIONS)]
    rng.shuffle(delays)
    state, seen = "old", []

    def more_delays() -> Iterator[float]:
        # On a loaded machine a restore can take longer than the ones measured above (or
        # shorter): until both outcomes were seen, a few more kills move further out (or in).
        yield from delays
        for extra in range(1, 7):
            outcomes = {outcome for _, outcome in seen}
            if outcomes == {"completed", "untouched"}:
                return
            scale = 1.6**extra if "completed" not in outcomes else 0.6**extra
            yield duration * scale * (0.5 + rng.random())

    for delay in more_delays():
        incoming = "new" if state == "old" else "old"
        worker = run_worker("restore", target, str(dumps[incoming]))
        time.sleep(delay)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pg_restore
        worker.communicate()
        wait_for_restore_lock_free(postgres_server.uri, name)
        now = contents(target)
        assert now in (expected["old"], expected["new"]), f"a mix after {delay:.2f} s (seed {seed})"
        state = "old" if now == expected["old"] else "new"
        seen.append((round(delay, 2), "completed" if state == incoming else "untouched"))
    print(f"kills (seed {seed}): {seen}")
    outcomes = {outcome for _, outcome in seen}
    assert outcomes == {"completed", "untouched"}, f"kills never hit both sides: {seen}"

    engine = new_engine(target)
    try:
        engine.recover_restore()
    finally:
        engine.close()
    assert not [db for db in databases(postgres_server.uri) if db.startswith(f"{name}__monarch")]
    assert contents(target) == expected[state]


@pytest.mark.parametrize(
    ("where", "expected_state"),
    [("in-swap", "old"), ("after-swap", "new")],
)
def test_a_restore_killed_inside_the_swap_is_all_old_and_right_after_it_all_new(
    make_db: Any, postgres_server: PostgresServer, tmp_path: Path, where: str, expected_state: str
) -> None:
    source, target = make_db(), make_db()
    fill_big(source)
    fill_old(target)
    expected = {"old": contents(target), "new": contents(source)}
    dump = tmp_path / "new.dump"
    dump_to(source, dump)
    name = target.rsplit("/", 1)[1]
    worker = run_worker("restore-pause", target, str(dump), where)
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "paused", worker.stderr
        os.killpg(worker.pid, signal.SIGKILL)
        worker.communicate()
    finally:
        worker.kill()
    wait_for_restore_lock_free(postgres_server.uri, name)
    assert contents(target) == expected[expected_state]
    left = [db for db in databases(postgres_server.uri) if db.startswith(f"{name}__monarch")]
    assert len(left) == 1  # the scratch copy (killed in the swap) or the old one (after it)
    engine = new_engine(target)
    try:
        assert left[0] in str(engine.recover_restore())
    finally:
        engine.close()
    assert contents(target) == expected[expected_state]
