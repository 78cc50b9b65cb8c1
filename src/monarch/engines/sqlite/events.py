"""The audit trail of a SQLite database: ``events.jsonl`` in monarch's folder beside it.

Audit events belong to the environment, not to its data: a restore replaces the database file
and ``drop_db`` removes it, and the trail must outlive both (it records them). So, like the
migration lock, it lives in ``<db>-monarch/``, one JSON object per line, appended under the
folder's mutex and fsynced. Reading never creates the folder; a torn last line (a writer killed
mid-append) is skipped, never fatal.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from monarch.engines.sqlite.files import SIDECAR_SUFFIX, fsync_dir, mutex, sidecar
from monarch.history import Event

EVENTS_FILE = "events.jsonl"
_MUTEX = "events.mutex"
_MUTEX_TIMEOUT = 10.0


def _events_path(database: Path) -> Path:
    return database.with_name(database.name + SIDECAR_SUFFIX) / EVENTS_FILE


def read_events(database: Path, limit: int | None = None) -> list[Event]:
    """The events recorded for ``database``, newest first (at most ``limit``)."""
    path = _events_path(database)
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue  # a torn last line of a killed writer
        if isinstance(data, dict) and "id" in data:
            found.append(_event(data))
    found.sort(key=lambda e: (e.at, e.id), reverse=True)
    return found if limit is None else found[:limit]


def append_event(database: Path, event: Event) -> None:
    """Record ``event`` unless an event with its id is recorded already."""
    folder = sidecar(database)
    path = folder / EVENTS_FILE
    with mutex(folder / _MUTEX, _MUTEX_TIMEOUT):
        if any(e.id == event.id for e in read_events(database)):
            return
        created = not path.exists()
        line = json.dumps(_plain(event), sort_keys=True).encode() + b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(folder)


def _plain(event: Event) -> dict[str, Any]:
    data = event.to_dict()
    data["at"] = event.at.isoformat()
    return data


def _event(data: dict[str, Any]) -> Event:
    if isinstance(data.get("at"), str):
        data = {**data, "at": datetime.fromisoformat(data["at"])}
    return Event.from_dict(data)
