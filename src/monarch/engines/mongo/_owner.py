"""Who holds a restore journal, and whether that process is still alive.

A restore's journal records its host, pid and start time, and a heartbeat refreshed by a
background thread. On the same host the process table answers at once (so a killed restore is
taken over by the very next run); from another host only a heartbeat gone silent for
``STALE_AFTER`` seconds does.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymongo.collection import Collection

STALE_AFTER = 60.0
"""Seconds of heartbeat silence after which a restore on another host is taken as dead."""
HEARTBEAT_EVERY = 5.0
DRAIN_SECONDS = 2.0
"""How long to let a just-dead restore's last commands finish on the server before cleaning up
after it: a command the server was already running completes even after its client is gone,
and an insert that lands after its staging collection was dropped re-creates it."""


def owner_fields(token: str, command: str) -> dict[str, Any]:
    """The journal fields that identify this process."""
    now = datetime.now(UTC)
    return {
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command,
        "started": now,
        "heartbeat": now,
    }


def is_alive(doc: dict[str, Any], held_here: set[str]) -> bool:
    """Whether the process that wrote journal ``doc`` may still be running."""
    pid = doc.get("pid")
    if doc.get("host") == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():
            return doc.get("token") in held_here
        started = doc.get("started")
        return _pid_alive(pid) and not _started_after(pid, started)
    return recently_alive(doc)


def recently_alive(doc: dict[str, Any]) -> bool:
    """Whether the journal's heartbeat is younger than ``STALE_AFTER``."""
    beat = doc.get("heartbeat")
    if not isinstance(beat, datetime):
        return False
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - beat).total_seconds() < STALE_AFTER


class Heartbeat:
    """Refresh ``heartbeat`` in the journal every few seconds until :meth:`stop`.

    A thread rather than calls from the work loop: a single index build can take minutes.
    """

    def __init__(self, journal: Collection[Any], doc_id: str, token: str) -> None:
        self._journal = journal
        self._filter = {"_id": doc_id, "token": token}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monarch-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from pymongo.errors import PyMongoError

        while not self._stop.wait(HEARTBEAT_EVERY):
            # A missed beat is harmless: the restore itself fails if the server is gone.
            with contextlib.suppress(PyMongoError):
                self._journal.update_one(self._filter, {"$set": {"heartbeat": datetime.now(UTC)}})


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) != "Z"  # a zombie is dead, only not yet reaped by its parent


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return None


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _started_after(pid: int, started: object) -> bool:
    """Whether process ``pid`` began after ``started``: then it is not the journal's writer,
    only a process that was given the same pid later."""
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20 or not isinstance(started, datetime):
        return False  # no /proc (not Linux): trust the pid
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            boot = next(float(line.split()[1]) for line in stat if line.startswith("btime"))
        began = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return False
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return began > started.timestamp() + 1.0  # clock ticks and boot time are coarse


def wait_for_drain(doc: dict[str, Any]) -> None:
    """Give a restore that died a moment ago time for its last commands to end on the server."""
    if recently_alive(doc):
        time.sleep(DRAIN_SECONDS)
