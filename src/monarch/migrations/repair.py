"""Repairing the migration history without running migrations: baseline, mark, accept.

Each function here is pure: given the migration files and the records, it returns the records
to write and the changes they make (``before -> after``), or nothing when the history already
says what was asked. The command layer runs them under the environment's lock, writes the
records and one audit :class:`~monarch.history.Event` naming the changes.

- :func:`plan_baseline`: every migration up to a name is applied (an existing database adopting
  monarch: Flyway's ``baseline``).
- :func:`plan_mark`: one migration is applied, or pending (runs again on the next ``migrate``).
- :func:`plan_accept`: an applied migration's file was edited on purpose; its new checksum is the
  one drift is measured from (Flyway's ``repair`` of one checksum).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monarch.errors import UsageError
from monarch.history import (
    APPLIED,
    MIGRATE,
    NEW,
    ROLLBACK,
    ROLLED_BACK,
    Change,
    Event,
    LockOwner,
    Record,
)
from monarch.migrations.discovery import resolve
from monarch.migrations.planning import before

if TYPE_CHECKING:
    from monarch.migrations.discovery import MigrationFile
    from monarch.migrations.results import Interrupted

PENDING = "pending"
STATE = "state"
CHECKSUM = "checksum"


@dataclass(frozen=True)
class Repair:
    """The records a repair writes, and what each changes."""

    records: tuple[Record, ...]
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class RepairResult:
    """What ``baseline``, ``mark`` or ``accept`` did on ``environment``.

    ``changes`` is empty when the history already said what was asked (then nothing was
    written and ``event`` is None); otherwise ``event`` is the audit entry written.
    ``interrupted``: runs found dead under the lock (their records now say so).
    """

    environment: str
    command: str
    changes: tuple[Change, ...]
    event: Event | None
    interrupted: tuple[Interrupted, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "command": self.command,
            "changed": self.changed,
            "changes": [
                {"migration": c.subject, "field": c.what, "before": c.before, "after": c.after}
                for c in self.changes
            ],
            "event": self.event.id if self.event is not None else None,
        }


def shown_state(record: Record | None) -> str:
    """A record's state as the history shows it: ``pending`` for none, rolled back or new."""
    if record is None or record.state in (ROLLED_BACK, NEW):
        return PENDING
    return record.state


def plan_baseline(
    files: list[MigrationFile], records: dict[str, Record], to: str, owner: LockOwner, now: datetime
) -> Repair:
    """Every migration up to and including ``to`` (in run order) recorded as applied, without
    running it; those applied already are left as they are."""
    last = resolve(files, to)
    written, changes = [], []
    for file in files:
        if before(last, file.name):
            break
        old = records.get(file.name)
        if old is not None and old.state == APPLIED:
            continue
        written.append(_applied(file, old, owner, now))
        changes.append(Change(file.name, STATE, shown_state(old), APPLIED))
    return Repair(tuple(written), tuple(changes))


def plan_mark(
    files: list[MigrationFile],
    records: dict[str, Record],
    name: str,
    *,
    applied: bool,
    owner: LockOwner,
    now: datetime,
) -> Repair:
    """Migration ``name`` recorded as applied (without running it), or as pending (so that the
    next ``migrate`` runs it; its saved checkpoints are dropped with the rest of its run)."""
    full = resolve(files, name, known=list(records))
    old = records.get(full)
    was = shown_state(old)
    if applied:
        if old is not None and old.state == APPLIED:
            return Repair((), ())
        file = next((f for f in files if f.name == full), None)
        if file is None:
            raise UsageError(
                f"{full} is recorded but its file is gone, so it cannot be marked applied",
                hint="put the file back (its checksum is recorded with it)",
            )
        return Repair((_applied(file, old, owner, now),), (Change(full, STATE, was, APPLIED),))
    if old is None or was == PENDING:
        return Repair((), ())
    pending = replace(old, state=ROLLED_BACK, action=ROLLBACK, **_stamped(owner, now))
    return Repair((pending,), (Change(full, STATE, was, PENDING),))


def plan_accept(files: list[MigrationFile], records: dict[str, Record], name: str) -> Repair:
    """The applied migration ``name`` recorded with its file's checksum as it is now."""
    full = resolve(files, name, known=list(records))
    file = next((f for f in files if f.name == full), None)
    old = records.get(full)
    if file is None:
        raise UsageError(f"{full} is recorded but its file is gone: there is no checksum to accept")
    if old is None or old.state != APPLIED:
        raise UsageError(
            f"{full} is {shown_state(old)}, not applied: only an applied migration's checksum "
            "can be accepted (a pending one is checked when it runs)",
            hint=f"`monarch mark ENV {full} --applied` records it applied with its file as it is",
        )
    if old.checksum == file.checksum:
        return Repair((), ())
    # Only the checksum: the record still tells the run that applied it.
    accepted = replace(old, checksum=file.checksum)
    return Repair((accepted,), (Change(full, CHECKSUM, old.checksum or None, file.checksum),))


def _applied(file: MigrationFile, old: Record | None, owner: LockOwner, now: datetime) -> Record:
    """``old`` (or a new record) saying ``file`` is applied as it is now, by ``owner``, now."""
    base = old or Record(name=file.name, state=APPLIED, checksum=file.checksum)
    return replace(
        base,
        state=APPLIED,
        action=MIGRATE,
        checksum=file.checksum,
        started_at=now,
        applied_at=now,
        out_of_order=False,
        **_stamped(owner, now),
    )


def _stamped(owner: LockOwner, now: datetime) -> dict[str, Any]:
    """The fields a repair sets on a record: done by ``owner`` just now, in no time, nothing
    failed, no checkpoint left, outside any transaction."""
    return {
        "finished_at": now,
        "duration": 0.0,
        "user": owner.user,
        "host": owner.host,
        "pid": owner.pid,
        "version": owner.version,
        "error": None,
        "checkpoint": {},
        "run_id": owner.token,
        "transactional": False,
    }
