"""Deciding what to run: states, order, drift, out-of-order, rollback order. No I/O here.

Order is by time (:func:`~.discovery.order_key`), whichever naming style a file has. Records that
monarch 0.0.x left (``Record.legacy``) follow its rules: one whose file is gone stops ``migrate``
(a renamed file would run twice), and one left ``Failed`` or ``Processing`` runs again only when
named with ``migrate_one``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from monarch.errors import DriftError, MigrationError, UsageError
from monarch.history import (
    APPLIED,
    FAILED,
    INTERRUPTED,
    MIGRATE,
    NEW,
    ROLLBACK,
    ROLLED_BACK,
    RUNNING,
    LockHolder,
    Record,
)
from monarch.migrations.discovery import MigrationFile, order_key, resolve
from monarch.migrations.results import CHANGED, MISSING, PENDING, MigrationStatus, Step
from monarch.migrations.sqlfiles import ROLLBACK_MARKER
from monarch.migrations.sqlfiles import SUFFIX as SQL_SUFFIX

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
        if record is not None and record.state == APPLIED and _changed(record, f):
            changed.append(f.name)
    return changed


def _changed(record: Record, file: MigrationFile) -> bool:
    # A record without a checksum (monarch 0.0.x kept none) cannot have drifted.
    return bool(record.checksum) and record.checksum != file.checksum


def newest_applied(records: dict[str, Record]) -> str | None:
    applied = [name for name, r in records.items() if r.state == APPLIED]
    return max(applied, key=order_key) if applied else None


def before(name: str, other: str) -> bool:
    """Whether migration ``name`` comes before ``other`` in run order."""
    return order_key(name) < order_key(other)


def first_sight(files: list[MigrationFile], records: dict[str, Record]) -> list[Record]:
    """0.0.x records not yet imported, with the checksum of their file as it is now.

    Saving them (under the lock) is the import: drift is measured from here on.
    """
    by_name = {f.name: f for f in files}
    return [
        replace(r, checksum=by_name[r.name].checksum)
        for r in records.values()
        if r.legacy and not r.checksum and r.name in by_name
    ]


def check_legacy(
    files: list[MigrationFile], records: dict[str, Record], steps: list[Step], environment: str
) -> None:
    """Refuse, before anything runs, what monarch 0.0.x's history makes unsafe to run."""
    names = {f.name for f in files}
    orphans = sorted((n for n, r in records.items() if r.legacy and n not in names), key=order_key)
    if orphans:
        raise MigrationError(
            f"the history of monarch 0.0.x (collection mongo_migration_history) of {environment!r} "
            f"records {', '.join(orphans)}, but the migrations folder has no such file; "
            "nothing was run",
            hint="put the file(s) back under their original names: monarch runs 0.0.x files "
            "as they are, and a renamed copy would run a second time",
        )
    unsure = [
        s.name
        for s in steps
        if (r := records.get(s.name)) is not None and r.legacy and r.state in (FAILED, INTERRUPTED)
    ]
    if unsure:
        first = unsure[0]
        raise MigrationError(
            f"{', '.join(unsure)}: monarch 0.0.x left {'it' if len(unsure) == 1 else 'them'} "
            f"failed or unfinished on {environment!r}, so some changes may already be made; "
            "monarch runs such a migration again only when asked by name; nothing was run",
            hint=f"check what it changed, then run it with `monarch migrate_one {first} "
            f"{environment}` (and `monarch migrate {environment}` for the rest)",
        )


def statuses(
    files: list[MigrationFile], records: dict[str, Record], lock: LockHolder | None
) -> list[MigrationStatus]:
    """Every migration (files, then records whose file is gone) with its state, in name order."""
    newest = newest_applied(records)
    by_name = {f.name: f for f in files}
    result = []
    for name in sorted(set(by_name) | set(records), key=order_key):
        file, record = by_name.get(name), records.get(name)
        running_by = None
        if record is not None and record.legacy and file is None:
            state = MISSING
        elif record is None or record.state in (ROLLED_BACK, NEW):
            state = PENDING
        elif file is None:
            state = MISSING
        elif record.state == APPLIED:
            state = CHANGED if _changed(record, file) else APPLIED
        elif record.state == RUNNING:
            if lock is not None and not lock.expired and lock.token == record.run_id:
                state = RUNNING
                running_by = f"{lock.describe()} since {lock.acquired_at:%H:%M:%S} UTC"
            else:
                state = INTERRUPTED  # its holder is gone; the next migrate records it so
        else:
            state = record.state
        out_of_order = state == PENDING and newest is not None and before(name, newest)
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
    files: list[MigrationFile],
    records: dict[str, Record],
    to: str | None = None,
    *,
    environment: str = "ENV",
) -> Plan:
    """Every pending migration in order, up to and including ``to``.

    Raises before anything runs when monarch 0.0.x's history forbids it (:func:`check_legacy`).
    """
    last = resolve(files, to) if to is not None else None
    newest = newest_applied(records)
    steps = []
    for f in files:
        if last is not None and before(last, f.name):
            break
        record = records.get(f.name)
        if is_pending(record):
            steps.append(_step(f, record, MIGRATE, newest is not None and before(f.name, newest)))
    check_legacy(files, records, steps, environment)
    return Plan(steps, drifted(files, records))


def plan_one(
    files: list[MigrationFile], records: dict[str, Record], name: str, *, record_only: bool = False
) -> Plan:
    """Exactly the migration ``name``, whatever its state.

    ``record_only`` records it applied without running it (its changes are known to be made).
    """
    full = resolve(files, name, known=list(records))
    file = next((f for f in files if f.name == full), None)
    if file is None:
        raise MigrationError(f"{full} is recorded but its file is gone; it cannot be run")
    step = _step(file, records.get(full), MIGRATE, False)
    if record_only:
        step = replace(step, record_only=True, resume=False, transactional=False)
    return Plan([step], drifted(files, records))


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
        # A rollback left ``running`` by a process that died is retried too (under the lock
        # it is first marked interrupted; a live one makes the run wait for its lock).
        if r.state == APPLIED
        or (r.state in (FAILED, INTERRUPTED, RUNNING) and r.action == ROLLBACK)
    ]
    done.sort(
        key=lambda r: (r.applied_at or r.finished_at or _EPOCH, order_key(r.name)), reverse=True
    )
    if to is not None:
        keep = resolve(files, to, known=list(records))
        chosen = [r for r in done if before(keep, r.name)]
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
