"""Scratch databases (monarch.backups.scratch) on every engine: new, removed whatever happens,
leftovers of killed runs removed by the next run and by recover, a live run's never."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from monarch.api.backups import recover
from monarch.backups.scratch import KEPT_PREFIX, PREFIX, new_name, remove_leftovers, scratch
from monarch.config import Environment, config_from_dict
from monarch.engines import engine_for
from monarch.migrations.lease import current_owner
from tests.engines.conftest import REPO, environment

CHILD = """
import sys, time
from monarch.backups.scratch import scratch
from tests.engines.conftest import environment
home = environment(sys.argv[1])
with scratch(home, purpose="test child") as s:
    print(s.name, flush=True)
    time.sleep(60)
"""


_OTHERS: set[str] = set()  # what other tests left on this worker's server (kept ones)


@pytest.fixture(params=["postgres", "sqlite", "mongo"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Environment]:
    """An environment of each engine whose server (folder) the scratch databases go on; what
    other tests of this worker left on the server is not this test's."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue(f"{request.param}_url")
    env = environment(url)
    _OTHERS.clear()
    _OTHERS.update(on_server(env) + on_server(env, KEPT_PREFIX))
    yield env


def on_server(home: Environment, prefix: str = PREFIX) -> list[str]:
    """This test's scratch databases on ``home``'s server."""
    engine = engine_for(home)
    try:
        return [name for name in engine.databases(prefix) if name not in _OTHERS]
    finally:
        engine.close()


def seed(env: Environment) -> None:
    """One collection (table) with a row, through the engine's own connection."""
    engine = engine_for(env)
    try:
        if env.engine == "mongo":
            engine.migration_context()["db"].items.insert_one({"_id": 1})
        else:
            engine.migration_context()["conn"].execute("CREATE TABLE items (id integer)")
    finally:
        engine.close()


def fingerprint(env: Environment) -> dict[str, object]:
    engine = engine_for(env)
    try:
        return dict(engine.fingerprint())
    finally:
        engine.close()


def holding_a_scratch(home: Environment, lease: int) -> tuple[subprocess.Popen[str], str]:
    """A child process (its own process group) holding a scratch database on ``home``'s
    server with a lease of ``lease`` seconds, and the database's name."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, home.url.reveal()], cwd=REPO, stdout=subprocess.PIPE,
        text=True, start_new_session=True,
        env={**os.environ, "MONARCH_SCRATCH_LEASE": str(lease)},
    )
    assert child.stdout is not None
    name = child.stdout.readline().strip()
    if not name.startswith(PREFIX):
        os.killpg(child.pid, signal.SIGKILL)
        raise AssertionError(f"the child holds no scratch database: {child.communicate()}")
    return child, name


def test_a_scratch_database_is_new_usable_and_gone_afterwards(home: Environment) -> None:
    seed(home)
    before = fingerprint(home)
    with scratch(home) as s:
        assert s.name.startswith(PREFIX) and s.name != home.database
        assert not s.environment.protected
        assert on_server(home) == [s.name]
        assert s.engine.fingerprint() == {}
        seed(s.environment)
        assert s.engine.create() is False  # it exists: nothing done
        assert len(s.engine.fingerprint()) == 1
    assert on_server(home) == []
    assert fingerprint(home) == before


def test_a_failing_or_interrupted_block_still_removes_it(home: Environment) -> None:
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)), scratch(home) as s:
            seed(s.environment)
            raise error
        assert on_server(home) == []


def test_a_kept_scratch_stays_and_is_no_leftover(home: Environment) -> None:
    with scratch(home, keep=True) as s:
        seed(s.environment)
    try:
        assert s.name.startswith(KEPT_PREFIX)
        assert on_server(home, KEPT_PREFIX) == [s.name]
        assert s.name not in remove_leftovers(home)
        assert on_server(home, KEPT_PREFIX) == [s.name]
    finally:
        engine = engine_for(s.environment)
        engine.remove()
        engine.close()
    assert on_server(home, KEPT_PREFIX) == []


def test_a_live_runs_scratch_is_left_alone_and_a_killed_ones_is_removed_by_the_next_run(
    home: Environment,
) -> None:
    child, name = holding_a_scratch(home, lease=2)
    try:
        if home.engine == "mongo":
            time.sleep(2.5)  # longer than the lease: only the heartbeat keeps it live
        assert name not in remove_leftovers(home)
        assert on_server(home) == [name]
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
    with scratch(home) as s:  # it died on this machine: no wait for its lease
        assert name in s.removed
        assert on_server(home) == [s.name]
    assert on_server(home) == []


def test_a_run_killed_on_this_machine_leaves_a_scratch_removed_at_once_not_after_its_lease(
    home: Environment,
) -> None:
    child, name = holding_a_scratch(home, lease=60)
    try:
        assert name not in remove_leftovers(home)  # alive: its lease has 60 s to go
        assert on_server(home) == [name]
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
    started = time.monotonic()
    assert remove_leftovers(home) == [name]
    assert time.monotonic() - started < 10  # the lease (60 s) was not waited for
    assert on_server(home) == []


def test_a_mongo_scratch_held_from_another_machine_waits_for_its_lease(mongo_url: str) -> None:
    home = environment(mongo_url)
    name = new_name()
    engine = engine_for(home.with_database(name))
    try:
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        elsewhere = replace(current_owner("rehearse elsewhere"), host="another-machine",
                            pid=int(gone.stdout))  # a PID gone here says nothing there
        assert engine.scratch_lock().try_acquire(elsewhere, 60).acquired
        assert name not in remove_leftovers(home)
        assert name in engine.databases(PREFIX)
    finally:
        engine.remove()
        engine.close()


def test_recover_removes_a_leftover_scratch_database_and_leaves_the_environment_alone(
    home: Environment, tmp_path: Path,
) -> None:
    seed(home)
    before = fingerprint(home)
    name = new_name()
    if home.engine == "sqlite":
        leftover = home.in_folder(Path(home.database).parent, name)
    else:
        leftover = home.with_database(name)
    engine = engine_for(leftover)
    engine.create()
    engine.close()
    seed(leftover)  # a killed run's: no lock held, something in it
    config = config_from_dict({"environments": {"test": {"url": home.url.reveal()}}}, None,
                              os.environ, root=Path("/"))
    done = recover(config, "test")
    assert done is not None and name in done
    assert on_server(home) == []
    assert fingerprint(home) == before
    assert recover(config, "test") is None
