"""History commands: repair it with an audit trail (baseline, mark, accept), and read it
(``list_history``, the ``monarch history`` command: not ``monarch.history``, the module of the
history types).

::

    import monarch

    config = monarch.load_config()
    monarch.baseline(config, "production", to="add_users", confirm="production")
    for entry in monarch.list_history(config, "production", limit=20).entries:
        print(entry.at, entry.kind, entry.summary)

Each repair is protected like ``migrate`` (a protected environment needs ``confirm``), holds the
environment's lock (:mod:`monarch.api.locking`) while it reads and writes the records, and
writes one audit event naming who (user, machine, pid), when (server clock) and what changed
(``before -> after``). A repair that finds the history already as asked writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from monarch.api.locking import DEFAULT_LEASE, DEFAULT_TIMEOUT, check_lock_options, exclusive
from monarch.engines import engine_for
from monarch.errors import UsageError
from monarch.history import ACCEPT, BASELINE, MARK, LockOwner, Record
from monarch.migrations import planning
from monarch.migrations.discovery import MigrationFile, discover
from monarch.migrations.progress import LoggingReporter, Notices
from monarch.migrations.repair import (
    Repair,
    RepairResult,
    plan_accept,
    plan_baseline,
    plan_mark,
)
from monarch.migrations.runner import mark_interrupted
from monarch.migrations.timeline import HistoryReport, timeline
from monarch.safety import require_confirmation

if TYPE_CHECKING:
    from datetime import datetime

    from monarch.config import Config

Planner = Callable[[list[MigrationFile], dict[str, Record], LockOwner, "datetime"], Repair]


def baseline(
    config: Config,
    environment: str,
    *,
    to: str,
    confirm: str | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Notices | None = None,
) -> RepairResult:
    """Record every migration up to and including ``to`` as applied on ``environment``,
    without running any (a database that already has their changes adopting monarch).

    Migrations applied already are left as they are; later ones stay pending. ``to`` may be
    any name ``migrate --to`` takes.
    """
    return _repair(
        config,
        environment,
        BASELINE,
        f"baseline {environment} --to {to}",
        lambda files, records, owner, now: plan_baseline(files, records, to, owner, now),
        confirm=confirm,
        lock_timeout=lock_timeout,
        lock_lease=lock_lease,
        reporter=reporter,
    )


def mark(
    config: Config,
    environment: str,
    name: str,
    *,
    applied: bool,
    confirm: str | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Notices | None = None,
) -> RepairResult:
    """Record migration ``name`` as applied (``applied=True``: without running it, with its
    file's checksum as it is now) or as pending (``applied=False``: the next ``migrate`` runs
    it again; its checkpoints are dropped)."""
    flag = "--applied" if applied else "--pending"
    return _repair(
        config,
        environment,
        MARK,
        f"mark {environment} {name} {flag}",
        lambda files, records, owner, now: plan_mark(
            files, records, name, applied=applied, owner=owner, now=now
        ),
        confirm=confirm,
        lock_timeout=lock_timeout,
        lock_lease=lock_lease,
        reporter=reporter,
    )


def accept(
    config: Config,
    environment: str,
    name: str,
    *,
    confirm: str | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Notices | None = None,
) -> RepairResult:
    """Accept the edited file of the applied migration ``name``: its checksum now is the one
    drift is measured from (after a deliberate edit; the migration does not run again)."""
    return _repair(
        config,
        environment,
        ACCEPT,
        f"accept {environment} {name}",
        lambda files, records, _owner, _now: plan_accept(files, records, name),
        confirm=confirm,
        lock_timeout=lock_timeout,
        lock_lease=lock_lease,
        reporter=reporter,
    )


def list_history(config: Config, environment: str, *, limit: int | None = None) -> HistoryReport:
    """Every run, failure, rollback, repair, restore, copy into and drop of ``environment``,
    newest first (at most ``limit``). Reads only: takes no lock, creates nothing."""
    env = config.environment(environment)
    if limit is not None and limit < 1:
        raise UsageError(f"the limit must be at least 1, not {limit}")
    engine = engine_for(env)
    try:
        store = engine.history()
        records = store.records()
        events = store.events(limit)
    finally:
        engine.close()
    return HistoryReport(env.name, tuple(timeline(records, events, limit)))


def _repair(
    config: Config,
    environment: str,
    kind: str,
    command: str,
    planner: Planner,
    *,
    confirm: str | None,
    lock_timeout: float,
    lock_lease: float,
    reporter: Notices | None,
) -> RepairResult:
    env = config.environment(environment)
    check_lock_options(lock_timeout, lock_lease)
    # Before connecting: a refusal leaves no trace.
    require_confirmation(env, kind, confirm)
    report = reporter or LoggingReporter()
    files = discover(config.migrations_dir)
    engine = engine_for(env)
    try:
        engine.server_info()  # an unreachable server fails here, within the connect timeout
        with exclusive(
            engine, env.name, command, lock_timeout=lock_timeout, lock_lease=lock_lease,
            notices=report,
        ) as held:
            store = engine.history()
            previous = held.lease.previous if held.lease is not None else None
            interrupted = mark_interrupted(store, previous, report)
            for record in planning.first_sight(files, store.records()):
                store.save(record)  # the import of monarch 0.0.x's history, as migrate does
            repair = planner(files, store.records(), held.owner, store.now())
            if not repair.changes:
                return RepairResult(env.name, kind, (), None, tuple(interrupted))
            for record in repair.records:
                store.save(record)
            summary = _summary(kind, repair)
            event = held.event(store, kind, summary, repair.changes)
            store.add_event(event)
    finally:
        engine.close()
    return RepairResult(env.name, kind, repair.changes, event, tuple(interrupted))


def _summary(kind: str, repair: Repair) -> str:
    count = len(repair.changes)
    if kind == BASELINE:
        last = repair.changes[-1].subject
        return f"baseline up to {last}: {count} migration(s) recorded applied without running"
    change = repair.changes[0]
    if kind == MARK:
        return f"marked {change.subject} {change.after} (was {change.before})"
    return f"accepted the edited file of {change.subject} (new checksum {str(change.after)[:12]})"
