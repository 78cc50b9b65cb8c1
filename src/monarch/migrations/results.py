"""What the migration commands return: plain, frozen values.

The CLI renders them (:mod:`monarch.cli.render.migrations`); the ``describe()`` lines here are
the run reporter's (:mod:`monarch.migrations.progress`), which prints them as a run goes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from monarch.history import (
    APPLIED,
    FAILED,
    INTERRUPTED,
    ROLLBACK,
    ROLLED_BACK,
    RUNNING,
    LockHolder,
    Record,
)

# States shown by list_migrations (a record's state, or one derived from the files).
PENDING = "pending"
CHANGED = "changed"  # applied, but the file changed since
MISSING = "missing"  # recorded, but the file is gone
NEEDS_WORK = frozenset({PENDING, FAILED, INTERRUPTED, RUNNING})


def when(value: datetime | None) -> str:
    """A timestamp as ``2024-05-01 12:00:00 UTC`` (empty for None)."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def seconds(value: float | None) -> str:
    """A duration as ``0.12 s``, ``12.3 s`` or ``4 min 05 s``."""
    if value is None:
        return ""
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


@dataclass(frozen=True)
class Step:
    """One migration a command will run (``action`` is ``migrate`` or ``rollback``)."""

    name: str
    path: Path
    action: str
    out_of_order: bool = False
    resume: bool = False  # an earlier run left a checkpoint to resume from
    previous_state: str | None = None
    transactional: bool = False
    record_only: bool = False  # recorded as applied without running it

    def describe(self) -> str:
        notes = []
        if self.record_only:
            notes.append("recorded as applied without running it")
        if self.out_of_order:
            notes.append("out of order: older than an applied migration")
        if self.resume:
            notes.append("resumes from its checkpoint")
        if self.previous_state in (FAILED, INTERRUPTED, RUNNING):
            notes.append(f"retry after {self.previous_state}")
        if self.transactional:
            notes.append("in a transaction")
        verb = "roll back" if self.action == ROLLBACK else "migrate"
        return f"{verb} {self.name}" + (f" ({'; '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class Outcome:
    """What happened to one migration: ``state`` is the record's new state."""

    name: str
    action: str
    state: str
    duration: float
    out_of_order: bool = False
    resumed: bool = False
    error: str | None = None  # the first line of the error
    record_only: bool = False  # recorded as applied without running it

    @property
    def ok(self) -> bool:
        return self.state != FAILED and self.error is None

    def describe(self) -> str:
        verb = {APPLIED: "applied", ROLLED_BACK: "rolled back"}.get(self.state, self.state)
        line = f"{verb:<11} {self.name}  {seconds(self.duration)}"
        if self.out_of_order:
            line += "  (ran out of order)"
        if self.resumed:
            line += "  (resumed from its checkpoint)"
        if self.record_only:
            line += "  (recorded without running it)"
        if self.error:
            line += f"  {self.error}"
        return line


@dataclass(frozen=True)
class Interrupted:
    """A run found unfinished (its process died or lost the lock) and marked interrupted.

    ``rolled_back``: the run was inside a transaction, so the database rolled all of it back.
    """

    name: str
    who: str
    pid: int
    started_at: datetime | None
    rolled_back: bool = False

    def describe(self) -> str:
        text = (
            f"{self.name} was interrupted: the run by {self.who} (pid {self.pid}) started "
            f"{when(self.started_at)} never finished; "
        )
        if self.rolled_back:
            return text + (
                "its transaction was rolled back, so none of it was applied and it runs "
                "again from the start"
            )
        return text + "it counts as pending"


@dataclass(frozen=True)
class RunResult:
    """The result of ``migrate``, ``migrate_one`` or ``rollback``.

    ``planned`` is what was (or, with ``dry_run``, would be) run; ``outcomes`` what happened,
    in order (empty for a dry run); ``drift`` names applied migrations whose file changed.
    """

    environment: str
    command: str
    dry_run: bool
    planned: tuple[Step, ...]
    outcomes: tuple[Outcome, ...] = ()
    drift: tuple[str, ...] = ()
    interrupted: tuple[Interrupted, ...] = ()
    backup: str | None = None

    @property
    def ran(self) -> list[str]:
        """Names of the migrations that completed."""
        return [o.name for o in self.outcomes if o.ok]

    @property
    def failed(self) -> Outcome | None:
        return next((o for o in self.outcomes if not o.ok), None)


@dataclass(frozen=True)
class MigrationStatus:
    """One migration's state on an environment, as ``list_migrations`` shows it."""

    name: str
    state: str
    path: Path | None
    record: Record | None = None
    out_of_order: bool = False
    running_by: str | None = None

    @property
    def pending(self) -> bool:
        return self.state in NEEDS_WORK


@dataclass(frozen=True)
class StatusReport:
    """The result of ``list_migrations``: every migration in order, and the lock."""

    environment: str
    migrations: tuple[MigrationStatus, ...]
    lock: LockHolder | None

    @property
    def needs_work(self) -> list[MigrationStatus]:
        """Migrations a ``migrate`` would run (pending, failed, interrupted, running)."""
        return [m for m in self.migrations if m.pending]


@dataclass(frozen=True)
class UnlockResult:
    """The result of ``unlock``: who held the lock that was cleared (None if it was free)."""

    environment: str
    cleared: LockHolder | None

