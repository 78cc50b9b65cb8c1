"""The migration lock of a SQLite database: OS file locks in ``<db>-monarch/``.

Why not SQLite's own write lock (``BEGIN EXCLUSIVE`` held for the run)? The migrations write on
their own connection, which that lock would block, as it would every writer of the application
for the whole run; and the lease could not be renewed while a long migration's transaction holds
the database's write lock. So the lock lives beside the database, in three files per lock name:

- ``NAME.state``: JSON naming the holder (user, host, pid, command), its lease and its epoch;
  replaced atomically, so a reader sees it whole.
- ``NAME.<epoch>.held``: ``flock``-ed by the holder's process as long as it holds that epoch.
  The kernel drops the lock when the process dies, however it dies: a dead holder is noticed at
  once, without waiting for its lease.
- ``NAME.mutex``: ``flock``-ed for the milliseconds a state change takes, which makes reading
  the state, deciding and writing it atomic across processes (:meth:`try_acquire` included).

Lease semantics: a holder whose process lives but stopped renewing (stuck, suspended) is taken
over once its lease expires: the new holder starts a new epoch, and the old one's ``renew()``
then returns False. ``clear()`` works the same way at any time. Times come from this machine's
clock: processes that share a SQLite file share a machine (SQLite's own locking does not work
across machines either). Needs ``flock`` (Linux, macOS, the BSDs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monarch.engines.sqlite.files import (
    SIDECAR_SUFFIX,
    mutex,
    sidecar,
    try_flock,
    unlock,
    write_atomically,
)
from monarch.errors import LockError
from monarch.history import Acquisition, LockHolder, LockOwner

MUTEX_TIMEOUT = 10.0
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class SQLiteLock:
    """:class:`~monarch.history.MigrationLock` named ``name`` (see the module doc)."""

    def __init__(self, database: Path, name: str = "migrate") -> None:
        self._database = database
        self.name = name
        stem = name if _SAFE_NAME.fullmatch(name) else hashlib.sha256(name.encode()).hexdigest()
        self._stem = stem
        self._held: dict[str, tuple[int, int]] = {}  # owner token -> (epoch, locked descriptor)

    def try_acquire(self, owner: LockOwner, lease: float) -> Acquisition:
        with self._locked():
            state = self._read()
            now = _now()
            previous = None
            if state is not None and _live(state):
                alive = self._alive(state["epoch"])
                if alive and _expires(state) > now:
                    return Acquisition(False, holder=_holder(state, now))
                previous = _holder(state, now, ended=not alive)
            epoch = (int(state["epoch"]) if state else 0) + 1
            fd = self._lock_epoch(epoch)
            try:
                self._write(
                    {
                        "epoch": epoch,
                        "token": owner.token,
                        "user": owner.user,
                        "host": owner.host,
                        "pid": owner.pid,
                        "command": owner.command,
                        "version": owner.version,
                        "acquired_at": now.isoformat(),
                        "expires_at": (now + timedelta(seconds=lease)).isoformat(),
                        "released_at": None,
                        "released_by": None,
                    }
                )
            except BaseException:
                self._drop_epoch(epoch, fd)
                raise
            self._remove_other_epochs(epoch)
            self._held[owner.token] = (epoch, fd)
        return Acquisition(True, previous=previous)

    def renew(self, owner: LockOwner, lease: float) -> bool:
        if owner.token not in self._held:
            return False
        with self._locked():
            state = self._read()
            if state is None or state["token"] != owner.token or not _live(state):
                self._forget(owner.token)
                return False
            state["expires_at"] = (_now() + timedelta(seconds=lease)).isoformat()
            self._write(state)
        return True

    def release(self, owner: LockOwner) -> None:
        held = self._held.pop(owner.token, None)
        if held is None:
            return
        epoch, fd = held
        if not self._folder().exists():  # the database was removed with its folder
            unlock(fd)
            return
        try:
            with self._locked():
                state = self._read()
                if state is not None and state["token"] == owner.token and _live(state):
                    now = _now().isoformat()
                    state.update(released_at=now, expires_at=now)
                    self._write(state)
                self._epoch_path(epoch).unlink(missing_ok=True)
        finally:
            unlock(fd)

    def holder(self) -> LockHolder | None:
        if not self._folder().exists():
            return None
        with self._locked():
            state = self._read()
            if state is None or not _live(state):
                return None
            return _holder(state, _now(), ended=not self._alive(state["epoch"]))

    def clear(self, by: LockOwner) -> LockHolder | None:
        with self._locked():
            state = self._read()
            if state is None or not _live(state):
                return None
            now = _now()
            holder = _holder(state, now, ended=not self._alive(state["epoch"]))
            state.update(released_at=now.isoformat(), expires_at=now.isoformat())
            state["released_by"] = by.who
            self._write(state)
            # A live holder keeps its descriptor (on a file no longer in use) until it notices.
            self._epoch_path(int(state["epoch"])).unlink(missing_ok=True)
            for token, (epoch, _) in list(self._held.items()):
                if epoch == int(state["epoch"]):
                    self._forget(token)
        return holder

    def close(self) -> None:
        """Release whatever this object still holds (as a process exit would)."""
        for token in list(self._held):
            self._forget(token)

    # -- internals

    def _folder(self) -> Path:
        return self._database.with_name(self._database.name + SIDECAR_SUFFIX)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The mutex around every read-decide-write of the state."""
        try:
            folder = sidecar(self._database)
            with mutex(folder / f"{self._stem}.mutex", MUTEX_TIMEOUT):
                yield
        except TimeoutError as exc:
            raise LockError(
                f"the migration lock's files beside {self._database} stayed busy: {exc}",
                hint="a monarch process is stopped in the middle of a lock operation; resume "
                "or end it",
            ) from exc
        except OSError as exc:
            raise LockError(
                f"cannot use the migration lock's files beside {self._database}: {exc}",
                hint="monarch needs to write in the database's folder",
            ) from exc

    def _state_path(self) -> Path:
        return self._folder() / f"{self._stem}.state"

    def _epoch_path(self, epoch: int) -> Path:
        return self._folder() / f"{self._stem}.{epoch}.held"

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self._state_path().read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LockError(f"cannot read the lock state {self._state_path()}: {exc}") from exc
        return data if isinstance(data, dict) else None

    def _write(self, state: dict[str, Any]) -> None:
        write_atomically(self._state_path(), json.dumps(state).encode())

    def _alive(self, epoch: Any) -> bool:
        """Whether a process still holds ``epoch``'s file locked (so the holder lives)."""
        path = self._epoch_path(int(epoch))
        fd = try_flock(path, create=False, shared=True)
        if fd is None:
            return path.exists()  # locked by its holder, or gone (a holder that is gone)
        unlock(fd)
        return False

    def _lock_epoch(self, epoch: int) -> int:
        # Locked under a temporary name, then renamed: nobody can probe an unlocked epoch file.
        temp = self._folder() / f".{self._stem}.{epoch}.{os.getpid()}.new"
        fd = try_flock(temp)
        if fd is None:
            raise LockError(f"cannot lock {temp}: it is locked already")
        os.replace(temp, self._epoch_path(epoch))
        return fd

    def _drop_epoch(self, epoch: int, fd: int) -> None:
        self._epoch_path(epoch).unlink(missing_ok=True)
        unlock(fd)

    def _remove_other_epochs(self, epoch: int) -> None:
        """Delete epoch files a dead or superseded holder left (we hold the mutex)."""
        for path in self._folder().glob(f"{self._stem}.*.held"):
            if path.name != self._epoch_path(epoch).name:
                path.unlink(missing_ok=True)

    def _forget(self, token: str) -> None:
        held = self._held.pop(token, None)
        if held is not None:
            unlock(held[1])


def _now() -> datetime:
    return datetime.now(UTC)


def _live(state: dict[str, Any]) -> bool:
    return state.get("released_at") is None


def _expires(state: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(state["expires_at"]))


def _holder(state: dict[str, Any], now: datetime, *, ended: bool = False) -> LockHolder:
    """The state as a LockHolder; ``ended``: its process is gone, so its lease is over now."""
    expires = _expires(state)
    return LockHolder(
        token=str(state.get("token", "")),
        user=str(state.get("user", "?")),
        host=str(state.get("host", "?")),
        pid=int(state.get("pid", 0)),
        command=str(state.get("command", "")),
        acquired_at=datetime.fromisoformat(str(state["acquired_at"])),
        expires_at=min(expires, now) if ended else expires,
        checked_at=now,
    )
