"""One environment's history as a timeline: migration runs and audit events, newest first.

The records say how each migration's last run went (applied, failed, rolled back,
interrupted, running); the audit events say what else changed the environment (baseline, mark,
accept, restore, copy_db, drop_db, recover). A record written by a repair carries the repair's
token as its ``run_id`` and is shown once, as the repair's event. Records of monarch 0.0.x have
no times: they come last, in name order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monarch.history import LEGACY_VERSION, Change, Event, Record
from monarch.migrations.discovery import order_key


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the timeline.

    ``kind``: ``migrate`` or ``rollback`` for a run (then ``migration`` and ``state`` are set),
    else the event's kind. ``at`` is None for records of monarch 0.0.x, which kept no times.
    """

    kind: str
    at: datetime | None
    summary: str
    user: str = ""
    host: str = ""
    pid: int = 0
    migration: str | None = None
    state: str | None = None
    duration: float | None = None
    error: str | None = None
    changes: tuple[Change, ...] = ()
    source: str | None = None
    command: str | None = None
    version: str = ""

    @property
    def who(self) -> str:
        return f"{self.user}@{self.host}" if self.user or self.host else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at.isoformat() if self.at is not None else None,
            "summary": self.summary,
            "user": self.user,
            "host": self.host,
            "pid": self.pid,
            "command": self.command,
            "version": self.version,
            "migration": self.migration,
            "state": self.state,
            "duration": self.duration,
            "error": self.error,
            "source": self.source,
            "changes": [
                {"subject": c.subject, "field": c.what, "before": c.before, "after": c.after}
                for c in self.changes
            ],
        }


@dataclass(frozen=True)
class HistoryReport:
    """``monarch history ENV``: the entries, newest first."""

    environment: str
    entries: tuple[HistoryEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"environment": self.environment, "entries": [e.to_json() for e in self.entries]}


def timeline(
    records: dict[str, Record], events: list[Event], limit: int | None = None
) -> list[HistoryEntry]:
    """Runs and events merged, newest first (at most ``limit``)."""
    repairs = {event.id for event in events}
    entries = [_from_event(event) for event in events]
    entries += [
        _from_record(record)
        for record in records.values()
        if record.run_id is None or record.run_id not in repairs
    ]
    timed = sorted((e for e in entries if e.at is not None), key=_when, reverse=True)
    untimed = sorted(
        (e for e in entries if e.at is None), key=lambda e: order_key(e.migration or "")
    )
    ordered = timed + untimed
    return ordered[:limit] if limit is not None else ordered


def _when(entry: HistoryEntry) -> datetime:
    assert entry.at is not None
    return entry.at


def _from_event(event: Event) -> HistoryEntry:
    return HistoryEntry(
        kind=event.kind,
        at=event.at,
        summary=event.summary,
        user=event.user,
        host=event.host,
        pid=event.pid,
        changes=event.changes,
        source=event.source,
        command=event.command,
        version=event.version,
    )


def _from_record(record: Record) -> HistoryEntry:
    at = record.finished_at or record.started_at or record.applied_at
    state = record.state
    if record.version == LEGACY_VERSION:
        summary = f"{record.name}: {state} (recorded by monarch 0.0.x)"
    else:
        verb = "rollback of " if record.action == "rollback" else ""
        summary = f"{verb}{record.name}: {state.replace('_', ' ')}"
        if record.error_line:
            summary += f": {record.error_line}"
    return HistoryEntry(
        kind=record.action,
        at=at,
        summary=summary,
        user=record.user,
        host=record.host,
        pid=record.pid,
        migration=record.name,
        state=state,
        duration=record.duration,
        error=record.error,
        version=record.version,
    )
