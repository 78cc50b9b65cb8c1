"""The HistoryStore and MigrationLock contract, run against every engine (PostgreSQL, SQLite,
MongoDB) on a real server or file."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monarch.errors import MigrationError
from monarch.history import APPLIED, FAILED, ROLLBACK, RUNNING, LockOwner, Record
from tests.engines.conftest import Kit


def owner(name: str) -> LockOwner:
    return LockOwner(f"token-{name}", name, f"host-{name}", 100, f"migrate as {name}", "1.0")


def moment(seconds: int = 0) -> datetime:
    # Millisecond precision: what every engine stores (MongoDB's dates have no more).
    now = datetime.now(UTC).replace(microsecond=123000)
    return now + timedelta(seconds=seconds)


def full_record() -> Record:
    return Record(
        name="0002_add_users",
        state=APPLIED,
        checksum="sha256:abc",
        action=ROLLBACK,
        started_at=moment(-5),
        finished_at=moment(),
        duration=4.5,
        user="alice",
        host="web1",
        pid=4242,
        version="1.2.3",
        error="ValueError: no\n\ntraceback",
        run_count=3,
        checkpoint={"users": {"last_id": 17, "done": 170}, "a.b": {"x": "y"}},
        backup="production-20260101",
        out_of_order=True,
        run_id="token-x",
        applied_at=moment(-60),
    )


# -- history


def test_history_is_empty_before_anything_is_recorded(kit: Kit) -> None:
    assert kit.make().history().records() == {}


def test_a_saved_record_reads_back_with_every_field(kit: Kit) -> None:
    record = full_record()
    kit.make().history().save(record)
    assert kit.make().history().records() == {record.name: record}


def test_save_replaces_the_record_of_the_same_name(kit: Kit) -> None:
    store = kit.make().history()
    store.save(Record(name="m1", state=RUNNING, checksum="a", run_count=1))
    store.save(Record(name="m1", state=FAILED, checksum="b", run_count=2, error="boom"))
    store.save(Record(name="m2", state=APPLIED, checksum="c"))
    records = store.records()
    assert sorted(records) == ["m1", "m2"]
    assert (records["m1"].state, records["m1"].checksum, records["m1"].error) == (
        FAILED,
        "b",
        "boom",
    )


def test_save_checkpoint_replaces_only_the_checkpoint(kit: Kit) -> None:
    store = kit.make().history()
    store.save(Record(name="m1", state=RUNNING, checksum="a", user="bob", run_count=2))
    store.save_checkpoint("m1", {"orders": {"last_id": 5}})
    store.save_checkpoint("m1", {"orders": {"last_id": 9}, "items": {"last_id": "k"}})
    record = kit.make().history().records()["m1"]
    assert record.checkpoint == {"orders": {"last_id": 9}, "items": {"last_id": "k"}}
    assert (record.state, record.user, record.run_count) == (RUNNING, "bob", 2)


def test_now_is_the_servers_utc_time(kit: Kit) -> None:
    now = kit.make().history().now()
    assert now.utcoffset() == timedelta(0)
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5


# -- the lock


def test_a_free_lock_is_acquired(kit: Kit) -> None:
    lock = kit.make().migration_lock()
    outcome = lock.try_acquire(owner("a"), 30)
    assert outcome.acquired and outcome.holder is None and outcome.previous is None


CLOCK_SLACK = 0.5
"""Seconds two estimates of one server's clock may differ by, on a loaded machine."""


def test_a_held_lock_is_refused_and_the_refusal_names_the_holder(kit: Kit) -> None:
    kit.make().migration_lock().try_acquire(owner("a"), 30)
    outcome = kit.make().migration_lock().try_acquire(owner("b"), 30)
    assert not outcome.acquired
    assert outcome.holder is not None
    assert outcome.holder.token == "token-a"
    assert outcome.holder.describe() == "a@host-a (pid 100, `migrate as a`)"
    assert not outcome.holder.expired


def test_holder_names_the_holder_and_its_lease(kit: Kit) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    kit.make().migration_lock().try_acquire(owner("a"), 30)
    holder = kit.make().migration_lock().holder()
    assert holder is not None
    assert (holder.token, holder.user, holder.host, holder.pid) == ("token-a", "a", "host-a", 100)
    assert before < holder.acquired_at < holder.expires_at
    # Two engines each estimate the server's clock (MongoDB: from hello's millisecond
    # localTime, within half a round trip), so their readings may differ by a little.
    assert 25 < (holder.expires_at - holder.checked_at).total_seconds() <= 30 + CLOCK_SLACK


def test_only_the_holder_renews(kit: Kit) -> None:
    lock = kit.make().migration_lock()
    lock.try_acquire(owner("a"), 30)
    assert lock.renew(owner("a"), 60)
    assert not kit.make().migration_lock().renew(owner("b"), 60)
    holder = kit.make().migration_lock().holder()
    assert holder is not None and (holder.expires_at - holder.checked_at).total_seconds() > 50


def test_release_frees_the_lock(kit: Kit) -> None:
    lock = kit.make().migration_lock()
    lock.try_acquire(owner("a"), 30)
    lock.release(owner("a"))
    assert kit.make().migration_lock().holder() is None
    other = kit.make().migration_lock().try_acquire(owner("b"), 30)
    assert other.acquired and other.previous is None


def test_release_by_someone_else_changes_nothing(kit: Kit) -> None:
    kit.make().migration_lock().try_acquire(owner("a"), 30)
    kit.make().migration_lock().release(owner("b"))
    holder = kit.make().migration_lock().holder()
    assert holder is not None and holder.token == "token-a"


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(kit: Kit) -> None:
    stuck = kit.make().migration_lock()
    assert stuck.try_acquire(owner("a"), 1).acquired
    time.sleep(1.3)  # "a" is alive but stopped renewing
    outcome = kit.make().migration_lock().try_acquire(owner("b"), 30)
    assert outcome.acquired
    assert outcome.previous is not None and outcome.previous.token == "token-a"
    assert outcome.previous.expired
    assert not stuck.renew(owner("a"), 30)
    holder = kit.make().migration_lock().holder()
    assert holder is not None and holder.token == "token-b"


def test_clear_frees_the_lock_whoever_holds_it(kit: Kit) -> None:
    lock = kit.make().migration_lock()
    lock.try_acquire(owner("a"), 30)
    cleared = kit.make().migration_lock().clear(owner("admin"))
    assert cleared is not None and cleared.token == "token-a"
    assert kit.make().migration_lock().holder() is None
    assert not lock.renew(owner("a"), 30)
    assert kit.make().migration_lock().try_acquire(owner("b"), 30).acquired


def test_clear_of_a_free_lock_returns_none(kit: Kit) -> None:
    assert kit.make().migration_lock().clear(owner("admin")) is None


def test_locks_of_different_names_are_independent(kit: Kit) -> None:
    engine = kit.make()
    assert engine.migration_lock("migrate").try_acquire(owner("a"), 30).acquired
    assert kit.make().migration_lock("other").try_acquire(owner("b"), 30).acquired


# -- transactions


def _prepare_items(kit: Kit, engine: Any) -> None:
    if kit.kind == "postgres":
        engine.connection.execute("CREATE TABLE items (n integer)")
    elif kit.kind == "sqlite":
        engine.connection.execute("CREATE TABLE items (n INTEGER)")


def _insert_item(kit: Kit, engine: Any, session: object, n: int) -> None:
    if kit.kind == "postgres":
        engine.migration_context()["conn"].execute("INSERT INTO items VALUES (%s)", (n,))
    elif kit.kind == "sqlite":
        engine.migration_context()["conn"].execute("INSERT INTO items VALUES (?)", (n,))
    else:
        engine.db.items.insert_one({"n": n}, session=session)


def _items(kit: Kit) -> list[int]:
    engine = kit.make()
    if kit.kind == "mongo":
        return sorted(d["n"] for d in engine.db.items.find({}))
    rows = engine.migration_context()["conn"].execute("SELECT n FROM items").fetchall()
    return sorted(row[0] for row in rows)


def _transactional(kit: Kit) -> Any:
    engine = kit.make()
    if not engine.history().supports_transactions():
        pytest.skip(f"this {kit.kind} server has no transactions")
    _prepare_items(kit, engine)
    return engine


def test_a_transaction_commits_the_data_and_the_record_together(kit: Kit) -> None:
    engine = _transactional(kit)
    store = engine.history()
    with store.transaction() as session:
        _insert_item(kit, engine, session, 1)
        store.save(Record(name="m1", state=APPLIED, checksum="a"), session=session)
    assert _items(kit) == [1]
    assert kit.make().history().records()["m1"].state == APPLIED


def test_a_failing_transaction_rolls_back_the_data_and_the_record(kit: Kit) -> None:
    engine = _transactional(kit)
    store = engine.history()
    store.save(Record(name="m1", state=RUNNING, checksum="a"))
    with pytest.raises(RuntimeError, match="migration failed"), store.transaction() as session:
        _insert_item(kit, engine, session, 1)
        store.save(Record(name="m1", state=APPLIED, checksum="a"), session=session)
        store.save_checkpoint("m1", {"k": {"n": 1}}, session=session)
        raise RuntimeError("migration failed")
    assert _items(kit) == []
    record = kit.make().history().records()["m1"]
    assert (record.state, record.checkpoint) == (RUNNING, {})
    # The connection is usable again, outside any transaction.
    store.save(Record(name="m1", state=FAILED, checksum="a"))
    assert kit.make().history().records()["m1"].state == FAILED


# -- transactions a migration opened itself (PostgreSQL and SQLite connections)


def _open_own_transaction(kit: Kit, engine: Any) -> None:
    conn = engine.migration_context()["conn"]
    conn.execute("BEGIN")
    _insert_item(kit, engine, None, 7)


@pytest.mark.parametrize("kit", ["postgres", "sqlite"], indirect=True)
def test_a_checkpoint_joins_a_transaction_the_migration_opened(kit: Kit) -> None:
    engine = kit.make()
    _prepare_items(kit, engine)
    store = engine.history()
    store.save(Record(name="m1", state=RUNNING, checksum="a"))
    _open_own_transaction(kit, engine)
    store.save_checkpoint("m1", {"items": {"last": 7}})
    assert kit.make().history().records()["m1"].checkpoint == {}  # not committed yet
    engine.migration_context()["conn"].execute("COMMIT")
    assert kit.make().history().records()["m1"].checkpoint == {"items": {"last": 7}}
    assert _items(kit) == [7]


@pytest.mark.parametrize("kit", ["postgres", "sqlite"], indirect=True)
def test_a_failure_record_is_durable_even_if_the_migration_left_a_transaction_open(
    kit: Kit,
) -> None:
    engine = kit.make()
    _prepare_items(kit, engine)
    store = engine.history()
    store.save(Record(name="m1", state=RUNNING, checksum="a"))
    _open_own_transaction(kit, engine)
    store.save(Record(name="m1", state=FAILED, checksum="a", error="boom"))
    assert kit.make().history().records()["m1"].state == FAILED
    assert _items(kit) == []  # the migration's unfinished work was rolled back


@pytest.mark.parametrize("kit", ["postgres", "sqlite"], indirect=True)
def test_success_with_a_transaction_left_open_is_an_error(kit: Kit) -> None:
    engine = kit.make()
    _prepare_items(kit, engine)
    store = engine.history()
    _open_own_transaction(kit, engine)
    with pytest.raises(MigrationError, match="left a transaction open"):
        store.save(Record(name="m1", state=APPLIED, checksum="a"))
