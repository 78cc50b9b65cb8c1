"""Running planned steps under the lock, each with its history record.

For every step: record ``running`` (so a crash is visible), run, record ``applied`` /
``rolled_back`` or ``failed`` with the error. A transactional migration's run and its final record
commit together. The first failure stops the run.

Each run's writes are counted in an accounting window on the engine's ledger (see
:mod:`monarch.accounting`) and kept in its record: also a failed or interrupted run's, when it
was not transactional (what it wrote stays written); a rolled-back transaction's is not kept.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from monarch.accounting import Accounting
from monarch.engines.sqltext import SQLDialect, SQLEngine
from monarch.errors import MigrationError, Terminated
from monarch.history import (
    APPLIED,
    FAILED,
    INTERRUPTED,
    MIGRATE,
    ROLLBACK,
    ROLLED_BACK,
    RUNNING,
    HistoryStore,
    LockHolder,
    Record,
)
from monarch.migrations.progress import LoopProgress, Notices, Reporter
from monarch.migrations.results import Interrupted, Outcome, Step

if TYPE_CHECKING:
    from monarch.engines.base import Engine
    from monarch.migrations.discovery import MigrationFile
    from monarch.migrations.lease import Lease

MAX_ERROR = 8000  # characters of traceback kept in a record


def mark_interrupted(
    store: HistoryStore, previous: LockHolder | None, reporter: Notices
) -> list[Interrupted]:
    """Mark records left ``running`` as ``interrupted``; call it only while holding the lock.

    Holding the lock proves their runs are over: a run writes ``running`` only under the lock.
    """
    found = []
    for record in store.records().values():
        if record.state != RUNNING:
            continue
        why = "its process stopped without finishing"
        if previous is not None and previous.token == record.run_id:
            why += f" (its lock lease expired at {previous.expires_at:%Y-%m-%d %H:%M:%S} UTC)"
        if record.transactional:
            # Its work and its `applied` record were one uncommitted transaction.
            why += "; its transaction was rolled back, so none of its changes were applied"
        error = f"interrupted: the run by {record.who} (pid {record.pid}): {why}"
        store.save(replace(record, state=INTERRUPTED, error=error))
        item = Interrupted(
            record.name, record.who, record.pid, record.started_at, record.transactional
        )
        reporter.message(item.describe(), warning=True)
        found.append(item)
    return found


class Runner:
    """Runs steps on one environment while ``lease`` holds its lock."""

    def __init__(
        self,
        *,
        environment: str,
        engine: Engine,
        store: HistoryStore,
        lease: Lease,
        reporter: Reporter,
        scrub: Callable[[str], str],
        backup: str | None = None,
    ) -> None:
        self.environment = environment
        self.engine = engine
        self.store = store
        self.lease = lease
        self.reporter = reporter
        self.scrub = scrub
        self.backup = backup
        self.outcomes: list[Outcome] = []  # of the steps finished so far
        self.current: Step | None = None  # the step being run
        self.began = False  # whether its run() or rollback() was called
        self.planned = 0
        self.command = "migrate"

    def interrupted(self, exc: KeyboardInterrupt) -> Terminated:
        """``exc`` (an interrupt that stopped :meth:`run`) with what the run left, truly told."""
        env = self.environment
        done = [o.name for o in self.outcomes if o.ok]
        before = f" after {len(done)} finished ({', '.join(done)}), which stay done" if done else ""
        step = self.current
        hint: str | None
        if step is None:
            left = self.planned - len(self.outcomes)
            if not done:
                message = "stopped before running any migration; nothing was changed"
            else:
                rest = f"; the {left} after them did not run" if left else ""
                message = f"stopped{before}{rest}"
            hint = f"run `monarch {self.command} {env}` again when ready" if left else None
        elif not self.began:
            message = (
                f"stopped as {_doing(step)} was about to begin{before}: none of it ran; it is "
                "recorded as interrupted"
            )
            hint = f"run `monarch {self.command} {env}` again when ready"
        elif step.transactional:
            message = (
                f"stopped during {_doing(step)}{before}: its transaction was rolled back, so "
                "none of its changes were made; it is recorded as interrupted"
            )
            again = "rollback" if step.action == ROLLBACK else "migrate"
            hint = f"run `monarch {again} {env}` again when ready"
        else:
            message = (
                f"stopped during {_doing(step)}{before}: it may have made part of its changes "
                "(it is not transactional); it is recorded as interrupted"
            )
            if step.action == ROLLBACK:
                hint = (
                    f"check the data, then `monarch rollback {env}` retries its rollback, or "
                    f"`monarch migrate_one {step.name} {env}` applies it again"
                )
            else:
                hint = (
                    f"check the data, then `monarch migrate {env}` runs {step.name} again "
                    "(from its last checkpoint, if it saves any; run() must be safe to repeat)"
                )
        return Terminated.of(exc, message, hint)

    def run(
        self, steps: list[Step], files: dict[str, MigrationFile], records: dict[str, Record]
    ) -> list[Outcome]:
        """Run ``steps`` in order, stopping at the first failure."""
        outcomes = []
        self.planned = len(steps)
        self.command = "rollback" if steps and steps[0].action == ROLLBACK else "migrate"
        for step in steps:
            self.lease.check()
            outcome = self._run_step(step, files[step.name], records.get(step.name))
            self.current = None
            outcomes.append(outcome)
            self.outcomes.append(outcome)
            self.reporter.finished(outcome)
            if not outcome.ok:
                break
        return outcomes

    def _run_step(self, step: Step, file: MigrationFile, old: Record | None) -> Outcome:
        owner = self.lease.owner
        record = replace(
            old or Record(name=step.name, state=RUNNING, checksum=file.checksum),
            state=RUNNING,
            action=step.action,
            checksum=file.checksum,
            started_at=self.store.now(),
            finished_at=None,
            duration=None,
            user=owner.user,
            host=owner.host,
            pid=owner.pid,
            version=owner.version,
            error=None,
            run_count=(old.run_count if old else 0) + 1,
            run_id=owner.token,
            backup=self.backup,
            transactional=file.transactional,
            accounting=None,
        )
        # Before the record says `running`: a refusal here leaves the history as it was.
        context = self.engine.migration_context()
        if step.action == MIGRATE:
            record.out_of_order = step.out_of_order
        record.checkpoint = dict(record.checkpoint) if step.resume else {}
        durable = dict(record.checkpoint)  # what a rolled-back transaction leaves in the store
        started = time.monotonic()
        self.current, self.began = step, False
        try:
            self.store.save(record)
            self.reporter.started(step)
            migration = file.cls()
            runtime = _Runtime(self, record)
            migration._bind(
                name=step.name,
                env=self.environment,
                context=context,
                runtime=runtime,
            )
        except (KeyboardInterrupt, SystemExit) as exc:
            # Stopped before it began: its record must not stay `running`.
            self._failed(record, started, exc, INTERRUPTED)
            raise
        method = migration.run if step.action == MIGRATE else migration.rollback
        if step.record_only:
            method = _nothing
        # What the run wrote; none for a step recorded without running, or with accounting off.
        ledger = self.engine.ledger
        wrote = Accounting() if ledger.enabled and not step.record_only else None
        try:
            if step.transactional:
                with self.store.transaction() as session:
                    migration.session = runtime.session = session
                    self.began = True
                    with ledger.window(wrote):
                        method()
                    done = self._done(record, step, started, wrote)
                    self.store.save(done, session=session)
            else:
                self.began = True
                with ledger.window(wrote):
                    method()
                done = self._done(record, step, started, wrote)
                self.store.save(done)
            record = done
        except (KeyboardInterrupt, SystemExit) as exc:
            finished = self._finished_anyway(step, record)
            if finished is not None:
                # The interrupt came after the commit (during COMMIT's wait, say): the step is
                # done, as its committed record says. Count it so, then stop.
                self.current = None
                self.outcomes.append(
                    Outcome(
                        step.name,
                        step.action,
                        finished.state,
                        finished.duration or 0.0,
                        step.out_of_order,
                        step.resume,
                    )
                )
                raise
            if not file.transactional:
                record.accounting = wrote
            self._failed(record, started, exc, INTERRUPTED, durable if file.transactional else None)
            raise
        except Exception as exc:
            if not file.transactional:
                record.accounting = wrote
            failed = self._failed(
                record, started, exc, FAILED, durable if file.transactional else None
            )
            return Outcome(
                step.name,
                step.action,
                FAILED,
                failed.duration or 0.0,
                step.out_of_order,
                step.resume,
                error=failed.error_line,
            )
        return Outcome(
            step.name,
            step.action,
            record.state,
            record.duration or 0.0,
            step.out_of_order,
            step.resume,
            record_only=step.record_only,
        )

    def _finished_anyway(self, step: Step, record: Record) -> Record | None:
        """This run's final record of ``step`` if it is stored (so its work is committed)."""
        wanted = APPLIED if step.action == MIGRATE else ROLLED_BACK
        try:
            stored = self.store.records().get(step.name)
        except Exception:
            return None  # cannot tell: recorded as interrupted, which is the safe side
        if stored is not None and stored.state == wanted and stored.run_id == record.run_id:
            return stored
        return None

    def _done(
        self, record: Record, step: Step, started: float, wrote: Accounting | None
    ) -> Record:
        now = self.store.now()
        applied = step.action == MIGRATE
        return replace(
            record,
            accounting=wrote,
            state=APPLIED if applied else ROLLED_BACK,
            finished_at=now,
            duration=time.monotonic() - started,
            checkpoint={},
            applied_at=now if applied else record.applied_at,
        )

    def _failed(
        self,
        record: Record,
        started: float,
        exc: BaseException,
        state: str,
        checkpoint: dict[str, dict[str, Any]] | None = None,
    ) -> Record:
        """Record the failure; ``checkpoint`` replaces the record's when the run's own
        transaction rolled back the checkpoints it saved (resuming from them would skip work)."""
        lines = traceback.format_exception(exc)
        text = _headline(exc, record.action) + "\n\n" + "".join(lines)
        if len(text) > MAX_ERROR:
            head = text.splitlines()[0]
            text = f"{head}\n...\n{text[-MAX_ERROR:]}"
        failed = replace(
            record,
            state=state,
            finished_at=self.store.now(),
            duration=time.monotonic() - started,
            error=self.scrub(text),
            checkpoint=record.checkpoint if checkpoint is None else checkpoint,
        )
        # The record of the failure matters more than the failure to write it.
        try:
            self.store.save(failed)
        except Exception as error:
            exc.add_note(f"monarch could not record the failure: {error}")
        return failed


def _nothing() -> None:
    """What a step recorded without running runs."""


def _doing(step: Step) -> str:
    return f"the rollback of {step.name}" if step.action == ROLLBACK else step.name


def _headline(exc: BaseException, action: str) -> str:
    """``Type: first line of the message`` for one-line displays."""
    message = str(exc).strip()
    if not message and isinstance(exc, NotImplementedError):
        message = f"{'rollback' if action == ROLLBACK else 'run'}() is not written yet"
    head = type(exc).__name__
    return f"{head}: {message.splitlines()[0]}" if message else head


class _Runtime:
    """The running migration's link to progress reporting, checkpoints and the lock."""

    def __init__(self, runner: Runner, record: Record) -> None:
        self.runner = runner
        self.record = record
        self.session: object | None = None
        self._starts: dict[str, tuple[float, int]] = {}

    def progress(self, label: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        started, start_done = self._starts.setdefault(label, (now, done))
        self.runner.reporter.progress(
            LoopProgress(self.record.name, label, done, total, start_done, now - started)
        )

    def checkpoint(self, key: str) -> dict[str, Any] | None:
        state = self.record.checkpoint.get(key)
        return dict(state) if state is not None else None

    def save_checkpoint(self, key: str, state: dict[str, Any]) -> None:
        self.record.checkpoint[key] = state
        self.runner.store.save_checkpoint(
            self.record.name, self.record.checkpoint, session=self.session
        )

    def check(self) -> None:
        self.runner.lease.check()

    def sql(self) -> SQLDialect:
        engine = self.runner.engine
        if not isinstance(engine, SQLEngine):  # planning refuses such a migration first
            raise MigrationError(f"the {engine.name} engine does not run SQL migrations")
        return engine.sql()
