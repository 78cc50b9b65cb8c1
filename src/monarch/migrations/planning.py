"""Deciding what to run: states, order, drift, out-of-order, rollback order. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from monarch.errors import DriftError, MigrationError, UsageError
from monarch.migrations.discovery import MigrationFile, resolve
from monarch.migrations.results import CHANGED, MISSING, PENDING, MigrationStatus, Step
from monarch.migrations.sqlfiles import ROLLBACK_MARKER
from monarch.migrations.sqlfiles import SUFFIX as SQL_SUFFIX
from monarch.migrations.store import (
    APPLIED,
    FAILED,
    INTERRUPTED,
    MIGRATE,
    ROLLBACK,
    ROLLED_BACK,
    RUNNING,
    LockHolder,
    Record,
)

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass
class Plan:
    """Steps to run, in order, and the applied migrations whose files changed."""

    steps: list[Step]
    drift: list[str] = field(default_factory=list)


def is_pending(record: Record | None) -> bool:
    """Whether ``migrate`` runs a migration with this record (anything but applied)."""
    return record is None or record.state != APPLIED


def drifted(files: list[MigrationFile], records: dict[str, Record]) -> list[str]:
    """Applied migrations whose file's checksum differs from the recorded one."""
    changed = []
    for f in files:
        record = records.get(f.name)
        if record is not None and record.state == APPLIED and record.checksum != f.checksum:
            changed.append(f.name)
    return changed


def newest_applied(records: dict[str, Record]) -> str | None:
    applied = [name for name, r in records.items() if r.state == APPLIED]
    return max(applied) if applied else None


def statuses(
    files: list[MigrationFile], records: dict[str, Record], lock: LockHolder | None
) -> list[MigrationStatus]:
    """Every migration (files, then records whose file is gone) with its state, in name order."""
    newest = newest_applied(records)
    by_name = {f.name: f for f in files}
    result = []
    for name in sorted(set(by_name) | set(records)):
        file, record = by_name.get(name), records.get(name)
        running_by = None
        if record is None or record.state == ROLLED_BACK:
            state = PENDING
        elif file is None:
            state = MISSING
        elif record.state == APPLIED:
            state = CHANGED if record.checksum != file.checksum else APPLIED
        elif record.state == RUNNING:
            if lock is not None and not lock.expired and lock.token == record.run_id:
                state = RUNNING
                running_by = f"{lock.describe()} since {lock.acquired_at:%H:%M:%S} UTC"
            else:
                state = INTERRUPTED  # its holder is gone; the next migrate records it so
        else:
            state = record.state
        out_of_order = state == PENDING and newest is not None and name < newest
        result.append(
            MigrationStatus(
                name=name,
                state=state,
                path=file.path if file else None,
                record=record,
                out_of_order=out_of_order,
                running_by=running_by,
            )
        )
    return result


def plan_migrate(
    files: list[MigrationFile], records: dict[str, Record], to: str | None = None
) -> Plan:
    """Every pending migration in file order, up to and including ``to``."""
    last = resolve(files, to) if to is not None else None
    newest = newest_applied(records)
    steps = []
    for f in files:
        if last is not None and f.name > last:
            break
        record = records.get(f.name)
        if is_pending(record):
            steps.append(_step(f, record, MIGRATE, newest is not None and f.name < newest))
    return Plan(steps, drifted(files, records))


def plan_one(files: list[MigrationFile], records: dict[str, Record], name: str) -> Plan:
    """Exactly the migration ``name``, whatever its state."""
    full = resolve(files, name, known=list(records))
    file = next((f for f in files if f.name == full), None)
    if file is None:
        raise MigrationError(f"{full} is recorded but its file is gone; it cannot be run")
    return Plan([_step(file, records.get(full), MIGRATE, False)], drifted(files, records))


def plan_rollback(
    files: list[MigrationFile],
    records: dict[str, Record],
    *,
    to: str | None = None,
    steps: int | None = None,
) -> Plan:
    """Applied migrations to roll back, most recently applied first.

    ``to`` keeps that migration and everything before it (in file order); ``steps`` rolls back
    that many. Without either, one step. A failed rollback can be retried. Raises before
    anything runs when one of them has no ``rollback()`` or no file.
    """
    if to is not None and steps is not None:
        raise UsageError("give either --to or --steps, not both")
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be at least 1, not {steps}")
    done = [
        r
        for r in records.values()
        if r.state == APPLIED or (r.state in (FAILED, INTERRUPTED) and r.action == ROLLBACK)
    ]
    done.sort(key=lambda r: (r.applied_at or r.finished_at or _EPOCH, r.name), reverse=True)
    if to is not None:
        keep = resolve(files, to, known=list(records))
        chosen = [r for r in done if r.name > keep]
    else:
        chosen = done[: steps or 1]
    by_name = {f.name: f for f in files}
    missing = [r.name for r in chosen if r.name not in by_name]
    if missing:
        raise MigrationError(
            f"cannot roll back {', '.join(missing)}: the file is gone; nothing was rolled back",
            hint="restore the file from version control, or roll back fewer steps",
        )
    without = [by_name[r.name] for r in chosen if not by_name[r.name].cls.has_rollback()]
    if without:
        python = [f.name for f in without if f.path.suffix != SQL_SUFFIX]
        sql = [f.name for f in without if f.path.suffix == SQL_SUFFIX]
        lacks = [f"{_names(python)} no rollback()"] if python else []
        lacks += [f"{_names(sql)} no statements after `{ROLLBACK_MARKER}`"] if sql else []
        raise MigrationError(
            f"{'; '.join(lacks)}; nothing was rolled back",
            hint="write a rollback() method (in an SQL file: statements after its "
            f"`{ROLLBACK_MARKER}` line), or roll back fewer steps (--steps / --to)",
        )
    return Plan(
        [_step(by_name[r.name], r, ROLLBACK, False) for r in chosen], drifted(files, records)
    )


def _names(names: list[str]) -> str:
    """``a has`` / ``a, b have``."""
    return f"{', '.join(names)} {'has' if len(names) == 1 else 'have'}"


def check_drift(plan: Plan, strict: bool) -> None:
    """With ``strict``, drift is an error (raised before anything runs)."""
    if strict and plan.drift:
        raise DriftError(
            f"{len(plan.drift)} applied migration(s) changed since they were applied: "
            f"{', '.join(plan.drift)}; nothing was run (--strict)",
            hint="restore the files as they were applied, or write a new migration for the change",
        )


def _step(file: MigrationFile, record: Record | None, action: str, out_of_order: bool) -> Step:
    resume = (
        action == MIGRATE
        and record is not None
        and record.state != APPLIED
        and record.action == MIGRATE
        and bool(record.checkpoint)
    )
    return Step(
        name=file.name,
        path=file.path,
        action=action,
        out_of_order=out_of_order,
        resume=resume,
        previous_state=record.state if record is not None else None,
        transactional=file.transactional,
    )
