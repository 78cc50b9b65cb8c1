"""The migration lock in MongoDB: numbered lease documents in ``monarch_lock``.

Each acquisition inserts a new document ``{_id: "<lock>:<epoch>"}`` with the next epoch; the
unique ``_id`` makes the insert the atomic step, so of any number of competing processes exactly
one gets each epoch. The lock's state is the document with the highest epoch: held while it is
neither released nor past its lease. Taking over an expired lease is just inserting the next
epoch, so it needs no conditional update — which matters on FerretDB, whose updates and deletes
are a read followed by a write and so cannot serve as compare-and-set. After inserting, the winner
checks that its epoch is the highest (a process that slept through other acquisitions may insert
a stale, lower epoch; it backs off), then deletes older epochs.

A holder that died (SIGKILL, a crash) is noticed before its lease ends where that can be told
for sure: each document names its process's machine, boot and PID namespace, and a holder of
this very machine, boot and namespace whose PID is gone is over (another machine's, or another
container's, holder waits for its lease, as before).
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monarch.engines.mongo.errors import translated
from monarch.errors import MonarchError
from monarch.history import LOCK_NAME, Acquisition, LockHolder, LockOwner

if TYPE_CHECKING:
    from pymongo.collection import Collection

    from monarch.engines.mongo import MongoEngine
    from monarch.engines.mongo.history import ServerClock

LOCK_COLLECTION = LOCK_NAME


class MongoLock:
    """:class:`~monarch.history.MigrationLock` named ``name`` in ``monarch_lock``."""

    def __init__(self, engine: MongoEngine, clock: ServerClock, name: str = "migrate") -> None:
        self._engine = engine
        self._clock = clock
        self.name = name
        self._mine: dict[str, str] = {}  # owner token -> _id of the document we inserted

    @property
    def _collection(self) -> Collection[dict[str, Any]]:
        return self._engine.db[LOCK_COLLECTION]

    def try_acquire(self, owner: LockOwner, lease: float) -> Acquisition:
        from pymongo.errors import DuplicateKeyError

        with translated(self._engine.environment, "taking the migration lock"):
            now = self._clock.now()
            latest = self._latest()
            if latest is not None and _held(latest, now) and not _died_here(latest):
                return Acquisition(False, holder=_holder(latest, now))
            previous = _holder(latest, now) if latest is not None and _live(latest) else None
            if previous is not None and previous.expires_at > now:
                previous = replace(previous, expires_at=now)  # its process died: over now
            epoch = _epoch(latest) + 1 if latest is not None else 1
            doc_id = f"{self.name}:{epoch:012d}"
            document = {
                "_id": doc_id,
                "lock": self.name,
                "epoch": epoch,
                "token": owner.token,
                "user": owner.user,
                "host": owner.host,
                "pid": owner.pid,
                "command": owner.command,
                "version": owner.version,
                "acquired_at": now,
                "renewed_at": now,
                "expires_at": now + timedelta(seconds=lease),
                "released_at": None,
                **_PLACE,
            }
            try:
                self._collection.insert_one(document)
            except DuplicateKeyError:
                # Someone else took this epoch a moment ago.
                current = self._latest()
                if current is not None and _held(current, self._clock.now()):
                    return Acquisition(False, holder=_holder(current, now))
                return Acquisition(False)
            except BaseException:
                # The insert may have happened before the error (or the interrupt) arrived.
                self._withdraw(doc_id, owner)
                raise
            try:
                current = self._latest()
            except BaseException:
                self._withdraw(doc_id, owner)
                raise
            if current is None or current["_id"] != doc_id:
                self._withdraw(doc_id, owner)
                return Acquisition(False, holder=_holder(current, now) if current else None)
            self._mine[owner.token] = doc_id
        # Older epochs only keep the collection small: the next acquisition retries.
        with suppress(MonarchError), translated(self._engine.environment, "tidying the lock"):
            self._collection.delete_many({"lock": self.name, "epoch": {"$lt": epoch}})
        return Acquisition(True, previous=previous)

    def _withdraw(self, doc_id: str, owner: LockOwner) -> None:
        """Delete the document we inserted while failing to take the lock, if it is there.

        A busy server gets a few tries: a document left behind would hold the lock for a whole
        lease with nobody holding it.
        """
        from pymongo.errors import PyMongoError

        for delay in (0.0, 0.05, 0.2, 0.5, 1.0, 2.0):
            time.sleep(delay)
            try:
                self._collection.delete_one({"_id": doc_id, "token": owner.token})
                return
            except PyMongoError:
                continue

    def renew(self, owner: LockOwner, lease: float) -> bool:
        doc_id = self._mine.get(owner.token)
        if doc_id is None:
            return False
        with translated(self._engine.environment, "renewing the migration lock"):
            now = self._clock.now()
            result = self._collection.update_one(
                {"_id": doc_id, "token": owner.token, "released_at": None},
                {"$set": {"renewed_at": now, "expires_at": now + timedelta(seconds=lease)}},
            )
            if result.matched_count != 1:
                return False  # cleared by `monarch unlock`
            latest = self._latest()
        return latest is not None and latest["_id"] == doc_id

    def release(self, owner: LockOwner) -> None:
        doc_id = self._mine.pop(owner.token, None)
        if doc_id is None:
            return
        with translated(self._engine.environment, "releasing the migration lock"):
            now = self._clock.now()
            # The released document stays: it keeps the epoch count going up.
            self._collection.update_one(
                {"_id": doc_id, "token": owner.token, "released_at": None},
                {"$set": {"released_at": now, "expires_at": now}},
            )

    def holder(self) -> LockHolder | None:
        with translated(self._engine.environment, "reading the migration lock"):
            latest = self._latest()
            now = self._clock.now()
        if latest is None or not _live(latest):
            return None
        return _holder(latest, now)

    def clear(self, by: LockOwner) -> LockHolder | None:
        with translated(self._engine.environment, "clearing the migration lock"):
            latest = self._latest()
            now = self._clock.now()
            if latest is None or not _live(latest):
                return None
            self._collection.update_one(
                {"_id": latest["_id"]},
                {"$set": {"released_at": now, "expires_at": now, "released_by": by.who}},
            )
        return _holder(latest, now)

    def _latest(self) -> dict[str, Any] | None:
        return self._collection.find_one({"lock": self.name}, sort=[("epoch", -1)])


def _place() -> dict[str, str]:
    """Where this process runs, finely enough to tell whether a PID of it is this process's
    neighbour: the machine, its boot, and the PID namespace (containers have their own)."""
    place = {"boot_id": "", "pid_ns": ""}
    with suppress(OSError):
        place["boot_id"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    with suppress(OSError):
        place["pid_ns"] = os.readlink("/proc/self/ns/pid")
    return place


_PLACE = _place()


def _died_here(doc: dict[str, Any]) -> bool:
    """Whether the holder ``doc`` names ran beside this process and its process is gone."""
    if not (_PLACE["boot_id"] and _PLACE["pid_ns"]):
        return False  # cannot tell: wait for the lease
    if doc.get("host") != socket.gethostname() or any(
        doc.get(key) != value for key, value in _PLACE.items()
    ):
        return False
    try:
        os.kill(int(doc.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False  # alive as someone else's process, or not a PID
    return False


def _epoch(doc: dict[str, Any]) -> int:
    """The document's epoch; for one that lacks the field (not written by monarch), the number
    its ``_id`` ends with, so that the next epoch's ``_id`` is a new one."""
    epoch = doc.get("epoch")
    if isinstance(epoch, int):
        return epoch
    digits = str(doc.get("_id", "")).rpartition(":")[2]
    return int(digits) if digits.isdigit() else 0


def _live(doc: dict[str, Any]) -> bool:
    return doc.get("released_at") is None


def _held(doc: dict[str, Any], now: datetime) -> bool:
    expires = doc.get("expires_at")
    return _live(doc) and isinstance(expires, datetime) and _aware(expires) > now


def _time(value: object, now: datetime) -> datetime:
    """A stored time, or ``now`` for a document that lacks it (one not written by monarch)."""
    return _aware(value) if isinstance(value, datetime) else now


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _holder(doc: dict[str, Any], now: datetime) -> LockHolder:
    return LockHolder(
        token=str(doc.get("token", "")),
        user=str(doc.get("user", "?")),
        host=str(doc.get("host", "?")),
        pid=int(doc.get("pid", 0)),
        command=str(doc.get("command", "")),
        acquired_at=_time(doc.get("acquired_at"), now),
        expires_at=_time(doc.get("expires_at"), now),
        checked_at=now,
    )


class ScratchLock(MongoLock):
    """The lock of a scratch database (named ``scratch``), which its holder drops while
    holding it: renewing or releasing it then writes nothing, since any write would create the
    database again (FerretDB creates a collection even for an update that matches nothing).

    Taking it is :meth:`MongoLock.try_acquire`: a leftover of a run that died on this machine
    is free at once, another machine's when its lease runs out."""

    def __init__(self, engine: MongoEngine, clock: ServerClock) -> None:
        super().__init__(engine, clock, "scratch")

    def renew(self, owner: LockOwner, lease: float) -> bool:
        return self._there() and super().renew(owner, lease)

    def release(self, owner: LockOwner) -> None:
        if self._there():
            super().release(owner)
        else:
            self._mine.pop(owner.token, None)

    def _there(self) -> bool:
        with translated(self._engine.environment, "reading the scratch database's lock"):
            return bool(self._engine.db.list_collection_names(filter={"name": LOCK_COLLECTION}))

