"""The migration lock on a busy server: moments of "database is locked" are retried, a failed
take leaves no record behind, and the heartbeat keeps the lease through them.

The server is the real MongoDB-wire test server; ``Busy`` is a real lock (the engine's) that
answers some calls with the error FerretDB's SQLite backend gives under load, at chosen moments.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pymongo.errors
import pytest

from monarch.engines import engine_for
from monarch.engines.mongo import MongoEngine
from monarch.engines.mongo.errors import translated
from monarch.engines.mongo.lock import LOCK_COLLECTION, MongoLock
from monarch.errors import LockError, ServerBusy
from monarch.history import LockOwner
from monarch.migrations.lease import Lease
from monarch.migrations.progress import LoggingReporter
from tests.migrations.conftest import Project

BUSY = "database is locked (5) (SQLITE_BUSY)"


def owner(name: str) -> LockOwner:
    return LockOwner(f"token-{name}", name, "testhost", 4242, "migrate development", "test")


def busy_error() -> pymongo.errors.OperationFailure:
    """The reply FerretDB (SQLite backend) sends when its database file is busy."""
    return pymongo.errors.OperationFailure(BUSY, code=1, details={"errmsg": BUSY, "code": 1})


class Busy(MongoLock):
    """The engine's lock, except that the calls named in ``fail`` raise the busy error.

    ``fail["latest"] = [2]`` makes the second read of the newest lock document fail (the read
    right after our insert), ``fail["renew"] = range(1, 4)`` the first three renewals.
    """

    def __init__(self, engine: MongoEngine, fail: dict[str, Any]) -> None:
        super().__init__(engine, engine._server_clock())
        self.fail = fail
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1
        if self.calls[what] in self.fail.get(what, ()):
            with translated(self._engine.environment, f"doing {what}"):
                raise busy_error()

    def _latest(self) -> dict[str, Any] | None:
        self._maybe_fail("latest")
        return super()._latest()

    def renew(self, owner: LockOwner, lease: float) -> bool:
        self._maybe_fail("renew")
        return super().renew(owner, lease)

    def release(self, owner: LockOwner) -> None:
        self._maybe_fail("release")
        super().release(owner)


@pytest.fixture
def engine(project: Project) -> Iterator[MongoEngine]:
    made = engine_for(project.config().environment("development"))
    assert isinstance(made, MongoEngine)
    yield made
    made.close()


def live_documents(project: Project) -> list[dict[str, Any]]:
    return list(project.db[LOCK_COLLECTION].find({"released_at": None}))


def test_the_servers_busy_error_becomes_a_monarch_error_that_says_so(engine: MongoEngine) -> None:
    with pytest.raises(ServerBusy) as caught, translated(engine.environment, "taking the lock"):
        raise busy_error()
    assert "was busy while taking the lock" in caught.value.message
    assert caught.value.hint and "run the command again" in caught.value.hint


def test_a_busy_moment_right_after_inserting_the_lock_leaves_no_record_and_is_retried(
    project: Project, engine: MongoEngine
) -> None:
    lock = Busy(engine, {"latest": [2]})  # 1: before the insert; 2: the check after it
    with Lease(lock, owner("me"), environment="development", reporter=LoggingReporter()) as held:
        assert held.previous is None
        [document] = live_documents(project)
        assert document["token"] == "token-me"
    assert live_documents(project) == []
    assert engine.migration_lock().holder() is None


def test_a_take_that_fails_for_good_leaves_no_record_and_names_the_busy_server(
    project: Project, engine: MongoEngine
) -> None:
    lock = Busy(engine, {"latest": range(2, 1000, 2)})  # every check after an insert
    lease = Lease(
        lock, owner("me"), environment="development", timeout=0.5, reporter=LoggingReporter()
    )
    with pytest.raises(LockError) as caught, lease:
        pass
    assert "could not take the migration lock of 'development': the server stayed busy" in str(
        caught.value
    )
    assert "SQLITE_BUSY" in str(caught.value)
    assert live_documents(project) == []
    other = engine.migration_lock()
    assert other.try_acquire(owner("next"), 30).acquired  # at once: nothing left to wait for
    other.release(owner("next"))


def test_the_heartbeat_keeps_the_lease_through_busy_moments(
    project: Project, engine: MongoEngine
) -> None:
    lock = Busy(engine, {"renew": range(1, 6)})  # five failed renewals in a row
    with Lease(
        lock, owner("me"), environment="development", lease=1.5, reporter=LoggingReporter()
    ) as held:
        time.sleep(3)  # two leases long: only renewals after the busy moments keep it
        held.check()
        assert lock.calls["renew"] > 5
        holder = engine.migration_lock().holder()
        assert holder is not None and holder.token == "token-me" and not holder.expired
    assert engine.migration_lock().holder() is None


def test_a_lease_that_cannot_be_renewed_in_time_stops_the_run_at_the_next_check(
    project: Project, engine: MongoEngine
) -> None:
    lock = Busy(engine, {"renew": range(1, 10_000)})
    with Lease(
        lock, owner("me"), environment="development", lease=1.0, reporter=LoggingReporter()
    ) as held:
        time.sleep(1.6)
        with pytest.raises(LockError) as caught:
            held.check()
    assert "its lease could not be renewed in time" in str(caught.value)


def test_a_busy_release_is_retried_so_the_next_run_need_not_wait(
    project: Project, engine: MongoEngine
) -> None:
    lock = Busy(engine, {"release": [1, 2]})
    with Lease(lock, owner("me"), environment="development", reporter=LoggingReporter()):
        pass
    assert engine.migration_lock().holder() is None
