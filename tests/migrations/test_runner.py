"""The engine-independent runner, on an in-memory engine: transactions (which the FerretDB test
server lacks), interruptions, and what the records say at each moment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from monarch.migrations.discovery import MigrationFile
from monarch.migrations.lease import Lease, current_owner
from monarch.migrations.migration import Migration
from monarch.migrations.planning import plan_migrate
from monarch.migrations.progress import LoggingReporter
from monarch.migrations.runner import Runner
from tests.migrations.memory import MemoryEngine, MemoryHistory, Transaction

NAME = "20240101000001_atomic"


def run(engine: MemoryEngine, cls: type[Migration]) -> list[Any]:
    file = MigrationFile(NAME, Path(f"{NAME}.py"), "c" * 64, cls)
    plan = plan_migrate([file], engine.store.records())
    with Lease(
        engine.lock, current_owner("migrate test"), environment="test", reporter=LoggingReporter()
    ) as lease:
        runner = Runner(
            environment="test",
            engine=engine,  # type: ignore[arg-type]
            store=engine.store,
            lease=lease,
            reporter=LoggingReporter(),
            scrub=lambda text: text,
        )
        return runner.run(plan.steps, {NAME: file}, engine.store.records())


def test_transactional_run_and_its_applied_record_commit_together() -> None:
    engine = MemoryEngine(transactions=True)
    seen: dict[str, Any] = {}

    class Atomic(Migration):
        transactional = True

        def run(self) -> None:
            seen["session"] = self.session
            seen["state during run"] = engine.store.saved[NAME].state

    [outcome] = run(engine, Atomic)
    assert outcome.ok
    assert isinstance(seen["session"], Transaction)
    assert seen["state during run"] == "running"  # recorded first, outside the transaction
    assert engine.store.saved[NAME].state == "applied"
    assert engine.store.committed == 1


def test_failed_transactional_run_commits_nothing_and_records_the_failure() -> None:
    engine = MemoryEngine(transactions=True)

    class Atomic(Migration):
        transactional = True

        def run(self) -> None:
            engine.store.save(engine.store.saved[NAME], session=self.session)
            raise RuntimeError("half-way")

    [outcome] = run(engine, Atomic)
    assert not outcome.ok
    assert engine.store.aborted == 1 and engine.store.committed == 0
    record = engine.store.saved[NAME]
    assert record.state == "failed" and record.error is not None
    assert record.error.startswith("RuntimeError: half-way")


def test_ctrl_c_marks_the_migration_interrupted_and_releases_the_lock() -> None:
    engine = MemoryEngine(transactions=False)

    class Stopped(Migration):
        def run(self) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(engine, Stopped)
    assert engine.store.saved[NAME].state == "interrupted"
    assert engine.lock.holder() is None


class InterruptedAfterCommit(MemoryHistory):
    """A history whose commits land, but whose caller is interrupted before it hears so (a
    signal during the wait for COMMIT's reply)."""

    @contextmanager
    def transaction(self) -> Iterator[object]:
        with super().transaction() as txn:
            yield txn
        raise KeyboardInterrupt


def test_ctrl_c_after_the_commit_keeps_the_migration_applied() -> None:
    engine = MemoryEngine(transactions=True)
    engine.store = InterruptedAfterCommit(transactions=True)

    class Atomic(Migration):
        transactional = True

        def run(self) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        run(engine, Atomic)
    assert engine.store.committed == 1
    assert engine.store.saved[NAME].state == "applied"  # not "interrupted": it committed
    assert engine.lock.holder() is None


def test_non_transactional_migration_never_opens_a_transaction() -> None:
    engine = MemoryEngine(transactions=False)

    class Plain(Migration):
        def run(self) -> None:
            assert self.session is None

    [outcome] = run(engine, Plain)
    assert outcome.ok and engine.store.saved[NAME].state == "applied"


def test_a_failed_transactional_run_forgets_the_checkpoints_its_transaction_rolled_back() -> None:
    engine = MemoryEngine(transactions=True)

    class Atomic(Migration):
        transactional = True

        def run(self) -> None:
            self.save_checkpoint("items", {"last": 500})
            raise RuntimeError("after the checkpoint")

    [outcome] = run(engine, Atomic)
    assert not outcome.ok
    record = engine.store.saved[NAME]
    assert record.state == "failed" and record.checkpoint == {}
    assert not plan_migrate([_file(Atomic)], engine.store.records()).steps[0].resume


def test_a_failed_non_transactional_run_keeps_its_checkpoint_to_resume_from() -> None:
    engine = MemoryEngine(transactions=False)

    class Walk(Migration):
        def run(self) -> None:
            self.save_checkpoint("items", {"last": 500})
            raise RuntimeError("after the checkpoint")

    run(engine, Walk)
    assert engine.store.saved[NAME].checkpoint == {"items": {"last": 500}}
    assert plan_migrate([_file(Walk)], engine.store.records()).steps[0].resume


def _file(cls: type[Migration]) -> MigrationFile:
    return MigrationFile(NAME, Path(f"{NAME}.py"), "c" * 64, cls)
