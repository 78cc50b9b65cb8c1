"""Renderings of the migration commands' results: generate, list_migrations (its table and its
JSON), migrate, migrate_one, rollback and unlock.

The lines a run prints while it goes (each migration's outcome) are the reporter's
(:mod:`monarch.migrations.progress`); what is rendered here is the closing summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from monarch.cli.output import table
from monarch.cli.render import ToStderr, data, show, text
from monarch.history import (
    APPLIED,
    FAILED,
    INTERRUPTED,
    NEW,
    ROLLBACK,
    ROLLED_BACK,
    RUNNING,
    Record,
)
from monarch.migrations.results import (
    CHANGED,
    MISSING,
    MigrationStatus,
    RunResult,
    StatusReport,
    UnlockResult,
    seconds,
    when,
)

__all__ = ["MigrationCreated", "Verbose", "show", "status_detail"]

# How monarch 0.0.x named the states its records are read as.
_LEGACY_STATES = {APPLIED: "Completed", FAILED: "Failed", INTERRUPTED: "Processing", NEW: "New"}


@dataclass(frozen=True)
class MigrationCreated:
    """The file ``generate`` wrote (shown relative to the current folder when under it)."""

    path: Path


@text.register
def _created_text(created: MigrationCreated) -> list[str]:
    try:
        shown = str(created.path.resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = str(created.path)
    return [f"created {shown}"]


# list_migrations -------------------------------------------------------------------------


@text.register
def _report_text(report: StatusReport) -> list[str]:
    rows = [(m.name, m.state.replace("_", " "), status_detail(m)) for m in report.migrations]
    lines = [table(("MIGRATION", "STATE", "DETAIL"), rows) if rows
             else "No migrations yet: `monarch generate NAME` writes the first one."]
    if report.lock is not None:
        lock = report.lock
        state = "expired" if lock.expired else "held"
        lines.append(f"\nLock {state}: {lock.describe()} since "
                     f"{lock.acquired_at:%Y-%m-%d %H:%M:%S} UTC, lease until "
                     f"{lock.expires_at:%H:%M:%S} UTC")
    env, work = report.environment, report.needs_work
    lines.append(f"\n{len(work)} to run on {env}." if work else f"\n{env} is up to date.")
    return lines


@dataclass(frozen=True)
class Verbose:
    """``list_migrations --verbose``: the report, and what each recorded run wrote."""

    report: StatusReport


@text.register
def _verbose_text(view: Verbose) -> list[str]:
    lines = _report_text(view.report)
    written = []
    for status in view.report.migrations:
        r = status.record
        if r is None or r.state == RUNNING:
            continue
        run = "rollback" if r.action == ROLLBACK else "run"
        if r.accounting is None:
            why = "recorded by monarch 0.0.x" if r.legacy else "recorded before monarch counted"
            written.append(f"{status.name}: no write accounting ({why})")
        elif not r.accounting:
            written.append(f"{status.name}: its last {run} wrote nothing monarch saw")
        else:
            written.append(f"{status.name}: its last {run} wrote")
            written.extend(f"    {line}" for line in r.accounting.lines())
    if written:
        lines[1:1] = ["\nWrites (the last run of each):", *written]
    return lines


@data.register
def _verbose_data(view: Verbose) -> dict[str, Any]:
    return _report_data(view.report)


@data.register
def _report_data(report: StatusReport) -> dict[str, Any]:
    lock = None
    if report.lock is not None:
        lock = {k: _plain(v) for k, v in report.lock.__dict__.items()}
        lock["expired"] = report.lock.expired
    return {
        "environment": report.environment,
        "migrations": [_status_data(m) for m in report.migrations],
        "pending": [m.name for m in report.needs_work],
        "lock": lock,
    }


def _status_data(status: MigrationStatus) -> dict[str, Any]:
    r = status.record
    value: dict[str, Any] = {
        "name": status.name,
        "state": status.state,
        "file": str(status.path) if status.path else None,
        "out_of_order": status.out_of_order,
        "detail": status_detail(status),
    }
    if r is not None:
        record = {k: _plain(v) for k, v in r.to_dict().items() if k not in ("name", "checkpoint")}
        record["has_checkpoint"] = bool(r.checkpoint)
        value["record"] = record
    return value


def status_detail(status: MigrationStatus) -> str:
    """One line: when/how long/by whom, the error, or why the migration is in its state."""
    r = status.record
    if status.state == RUNNING:
        return f"running now: {status.running_by}"
    if r is None:
        return "older than an applied migration: will run out of order" * status.out_of_order
    if r.legacy:
        return _legacy_detail(status, r)
    if status.state in (APPLIED, CHANGED, MISSING) and r.state == APPLIED:
        text = f"{when(r.applied_at or r.finished_at)}, {seconds(r.duration)}, by {r.who}"
        if r.backup:
            text += f", backup {r.backup}"
        if status.state == CHANGED:
            text = "file changed since it was applied; " + text
        if status.state == MISSING:
            text = "file missing; " + text
        return text
    if r.state == ROLLED_BACK:
        return f"rolled back {when(r.finished_at)} by {r.who}"
    if r.state == RUNNING:  # shown as interrupted: no live lock holder runs it
        text = f"the run by {r.who} (pid {r.pid}) since {when(r.started_at)} stopped"
        return text + ("; its transaction was rolled back" if r.transactional else "")
    if r.state in (FAILED, INTERRUPTED):
        action = "rollback " if r.action == ROLLBACK else ""
        return f"{action}{r.error_line} ({when(r.started_at)}, by {r.who})"
    return ""


def _legacy_detail(status: MigrationStatus, r: Record) -> str:
    """A record of monarch 0.0.x (no user, host, duration or error text)."""
    text = "recorded by monarch 0.0.x"
    if status.state == MISSING:
        was = _LEGACY_STATES.get(r.state, r.state)
        text = f"file missing (it must keep its name); {text} as {was}"
    elif r.state == APPLIED:
        text += f" as Completed {when(r.applied_at)}".rstrip()
    elif r.state in (FAILED, INTERRUPTED):
        text = f"{r.error_line}; runs again only with `monarch migrate_one`"
    if status.state == CHANGED:
        text = "file changed since it was first seen; " + text
    return text


def _plain(value: object) -> object:
    """JSON-ready: times as ISO 8601 strings."""
    return value.isoformat() if isinstance(value, datetime) else value


# migrate, migrate_one, rollback, unlock --------------------------------------------------


@text.register
def _run_text(result: RunResult) -> list[str]:
    env = result.environment
    verb = "roll back" if result.command == "rollback" else "run"
    if result.dry_run:
        lines: list[str] = [ToStderr(f"Warning: {name} changed since it was applied")
                            for name in result.drift]
        if not result.planned:
            return [*lines, f"Dry run: nothing to {verb} on {env}."]
        return [*lines, f"Dry run: would {verb} {len(result.planned)} migration(s) on {env}:",
                *(f"  {step.describe()}" for step in result.planned), "Nothing was changed."]
    if not result.outcomes:
        return [f"Nothing to {verb} on {env}: it is up to date." if verb == "run"
                else f"Nothing to roll back on {env}."]
    total = sum(o.duration for o in result.outcomes)
    done = "rolled back" if result.command == "rollback" else "ran"
    line = f"{done} {len(result.outcomes)} migration(s) on {env} in {total:.2f} s"
    if result.backup:
        line += f" (backup: {result.backup})"
    return [line[0].upper() + line[1:] + "."]


@text.register
def _unlock_text(result: UnlockResult) -> list[str]:
    env, holder = result.environment, result.cleared
    if holder is None:
        return [f"The migration lock of {env} was free; nothing to clear."]
    return [f"Cleared the migration lock of {env}, held by {holder.describe()} since "
            f"{holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC."]
