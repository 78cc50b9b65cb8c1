"""Recovery from an interrupted restore, step by step: the journal's state decides.

A restore that stops before its swap is rolled back (staging dropped, target as it was); one
that stops anywhere inside its swap is rolled forward (the backup, exactly). Each state a crash
can leave is built here by hand, following the journal's documented protocol, and recovered.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from pymongo.database import Database

from monarch import backup, restore
from monarch.api.backups import recover
from monarch.archive import CollectionMeta, open_archive
from monarch.engines import engine_for
from monarch.engines.mongo.journal import (
    ASIDE_PREFIX,
    JOURNAL,
    STAGING_PREFIX,
    derived_name,
)
from monarch.errors import RestoreBusy
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    BOOKKEEPING,
    TwoDbs,
    leftovers,
    seed,
    snapshot,
    two_dbs_fixture,
    write_archive,
)

TOKEN = "0badc0de"
OLD = {"a": [{"_id": 1, "v": "old a"}], "b": [{"_id": 2, "v": "only in old"}]}
NEW = {"a": [{"_id": 1, "v": "new a"}, {"_id": 3, "v": "new a too"}], "c": [{"_id": 4}]}


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def contents(db: Database[Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: list(db[name].find(sort=[("_id", 1)]))
            for name in sorted(set(db.list_collection_names()) - BOOKKEEPING)}


def swap_steps(db: Database[Any]) -> list[Any]:
    """Every write of a swap from OLD to NEW, in the order a restore makes them."""
    name = db.name
    aside = {n: derived_name(ASIDE_PREFIX, TOKEN, n, name) for n in OLD}
    staging = {n: derived_name(STAGING_PREFIX, TOKEN, n, name) for n in NEW}
    journal = db[JOURNAL]
    plan = {"state": "aside", "old_views": [], "views": [],
            "aside": [{"from": n, "to": a} for n, a in aside.items()],
            "placing": [{"from": s, "to": n} for n, s in staging.items()]}
    steps: list[Any] = [lambda: journal.update_one({"_id": "restore"}, {"$set": plan})]
    steps += [lambda n=n, a=a: db[n].rename(a) for n, a in aside.items()]
    steps.append(lambda: journal.update_one({"_id": "restore"}, {"$set": {"state": "placing"}}))
    steps += [lambda n=n, s=s: db[s].rename(n) for n, s in staging.items()]
    steps.append(lambda: journal.update_one({"_id": "restore"}, {"$set": {"state": "dropping"}}))
    steps += [lambda a=a: db.drop_collection(a) for a in aside.values()]
    steps.append(lambda: db.drop_collection(JOURNAL))
    return steps


def loaded_but_not_swapped(db: Database[Any], *, pid: int, host: str | None = None,
                           heartbeat: datetime | None = None,
                           started: datetime | None = None) -> None:
    """OLD in place, NEW loaded into staging, the journal in its ``loading`` state."""
    for name, docs in OLD.items():
        db[name].insert_many(docs)
    # By default its writer died long ago: recovery need not wait for its last commands.
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    db[JOURNAL].insert_one({"_id": "restore", "token": TOKEN, "state": "loading",
                            "host": host or socket.gethostname(), "pid": pid,
                            "command": "monarch restore (killed)",
                            "started": started or long_ago,
                            "heartbeat": heartbeat or long_ago})
    for name, docs in NEW.items():
        db[derived_name(STAGING_PREFIX, TOKEN, name, db.name)].insert_many(docs)


SWAP_STEPS = 10  # the plan, 2 renames aside, placing, 2 renames in, dropping, 2 drops, journal


@pytest.mark.parametrize("done", range(SWAP_STEPS + 1))
def test_a_restore_killed_after_any_step_is_finished_or_undone_by_recovery(
    two_dbs: TwoDbs, done: int
) -> None:
    db = two_dbs.target
    loaded_but_not_swapped(db, pid=dead_pid())
    steps = swap_steps(db)
    assert len(steps) == SWAP_STEPS
    for step in steps[:done]:
        step()

    said = recover(two_dbs.config(), "staging")

    expected = OLD if done == 0 else NEW
    assert contents(db) == {k: sorted(v, key=lambda d: d["_id"]) for k, v in expected.items()}
    assert leftovers(db) == []
    if done in (0, len(steps)):
        assert said is None if done == len(steps) else "before its swap" in str(said)
    else:
        assert said is not None and "during its swap" in said


def test_the_next_restore_finishes_an_interrupted_swap_before_its_own_work(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    name = backup(config, "development").name
    db = two_dbs.target
    loaded_but_not_swapped(db, pid=dead_pid())
    for step in swap_steps(db)[:5]:
        step()

    result = restore(config, name, "staging")

    assert result.recovered is not None and "during its swap" in result.recovered
    assert snapshot(db) == snapshot(two_dbs.source)


def test_a_restore_alive_in_another_process_is_not_disturbed(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    name = backup(config, "development").name
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        now = datetime.now(UTC)
        loaded_but_not_swapped(two_dbs.target, pid=sleeper.pid, started=now, heartbeat=now)
        before = contents(two_dbs.target)

        with pytest.raises(RestoreBusy, match=f"pid {sleeper.pid}"):
            restore(config, name, "staging")

        assert contents(two_dbs.target) == before
    finally:
        sleeper.kill()
        sleeper.wait()
    restore(config, name, "staging")  # its owner is gone now: taken over at once
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_a_restore_on_another_host_is_taken_over_only_once_its_heartbeat_is_stale(
    two_dbs: TwoDbs,
) -> None:
    db = two_dbs.target
    loaded_but_not_swapped(db, pid=1, host="elsewhere.example", heartbeat=datetime.now(UTC))

    with pytest.raises(RestoreBusy, match=r"elsewhere\.example"):
        recover(two_dbs.config(), "staging")

    db[JOURNAL].update_one({"_id": "restore"}, {"$set": {
        "heartbeat": datetime.now(UTC) - timedelta(hours=1)}})
    assert "before its swap" in str(recover(two_dbs.config(), "staging"))
    assert contents(db) == OLD


def test_staging_collections_without_a_journal_are_removed_by_the_next_restore(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    config = two_dbs.config()
    two_dbs.target[f"{STAGING_PREFIX}feedf00d_users"].insert_one({"_id": "orphan"})

    restore(config, backup(config, "development").name, "staging")

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_an_interrupt_just_before_the_swap_leaves_the_target_as_it_was(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)
    path = write_archive(two_dbs.root / "x.archive", [
        (CollectionMeta.build("shop", "items"), [bson.encode({"_id": i}) for i in range(100)]),
    ])
    engine = engine_for(two_dbs.config().environment("staging"))

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            engine.restore(open_archive(io.BytesIO(path.read_bytes())), from_db="shop",
                                before_swap=ctrl_c)
    finally:
        engine.close()

    assert snapshot(two_dbs.target) == before
    assert leftovers(two_dbs.target) == []


def test_pid_of_this_process_is_alive_only_while_it_holds_the_journal(two_dbs: TwoDbs) -> None:
    """A journal left by this very process (a swap that failed here) is recovered, not feared."""
    db = two_dbs.target
    loaded_but_not_swapped(db, pid=os.getpid())
    for step in swap_steps(db)[:3]:
        step()

    assert "during its swap" in str(recover(two_dbs.config(), "staging"))
    assert leftovers(db) == []
