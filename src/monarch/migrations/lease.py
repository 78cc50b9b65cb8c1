"""Holding the migration lock: waiting for it, renewing its lease, noticing its loss.

The engine's :class:`~monarch.migrations.store.MigrationLock` provides the atomic primitives;
this module adds what every engine shares: the bounded wait with a message naming the holder, a
heartbeat thread that renews the lease while migrations run, and ``check()``, which the runner
calls between migrations (and batches) to stop when the lock was lost.
"""

from __future__ import annotations

import getpass
import logging
import os
import random
import socket
import threading
import time
import uuid
from types import TracebackType

from monarch._version import __version__
from monarch.errors import LockError, MonarchError
from monarch.migrations.progress import Reporter
from monarch.migrations.results import when
from monarch.migrations.store import LockHolder, LockOwner, MigrationLock

log = logging.getLogger("monarch.migrations")

DEFAULT_TIMEOUT = 60.0
DEFAULT_LEASE = 60.0
MIN_LEASE = 1.0
POLL = 0.2


def current_owner(command: str) -> LockOwner:
    """This process, as it appears in the lock and the history records."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no user name in some containers
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return LockOwner(
        token=uuid.uuid4().hex,
        user=user,
        host=socket.gethostname(),
        pid=os.getpid(),
        command=command,
        version=__version__,
    )


class Lease:
    """A context manager that holds ``lock`` for ``owner`` until the block ends.

    ``previous`` is set when the lock was taken over from a holder whose lease had expired.
    """

    def __init__(
        self,
        lock: MigrationLock,
        owner: LockOwner,
        *,
        environment: str,
        lease: float = DEFAULT_LEASE,
        timeout: float = DEFAULT_TIMEOUT,
        reporter: Reporter,
    ) -> None:
        if lease < MIN_LEASE:
            raise LockError(f"the lock lease must be at least {MIN_LEASE:g} s, not {lease:g}")
        if timeout < 0:
            raise LockError(f"the lock timeout cannot be negative ({timeout:g})")
        self.lock = lock
        self.owner = owner
        self.environment = environment
        self.lease = lease
        self.timeout = timeout
        self.reporter = reporter
        self.previous: LockHolder | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self._acquire()
        self._thread = threading.Thread(
            target=self._heartbeat, name="monarch-lock-heartbeat", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.lock.release(self.owner)
        except MonarchError as error:
            # Not fatal: the lease runs out by itself.
            log.warning("could not release the migration lock (%s); its lease will expire", error)

    def check(self) -> None:
        """Raise LockError if the lock was lost (cleared, or taken over after a stall)."""
        if self._lost is not None:
            raise LockError(
                f"lost the migration lock of {self.environment!r}: {self._lost}; "
                "stopped before running anything more",
                hint="check what else is migrating this environment "
                "(`monarch list_migrations ENV`), then run migrate again",
            )

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        announced: str | None = None
        while True:
            attempt = self.lock.try_acquire(self.owner, self.lease)
            if attempt.acquired:
                self.previous = attempt.previous
                return
            holder = attempt.holder
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._busy(holder)
            if holder is not None and holder.token != announced:
                announced = holder.token
                self.reporter.message(
                    f"waiting up to {remaining:.0f} s for the migration lock of "
                    f"{self.environment!r}, held by {holder.describe()} "
                    f"(lease until {when(holder.expires_at)})"
                )
            # Jitter keeps a crowd of waiters from polling in lockstep.
            time.sleep(min(POLL * random.uniform(0.5, 1.5), max(remaining, 0.01)))

    def _busy(self, holder: LockHolder | None) -> LockError:
        who = holder.describe() if holder is not None else "another process"
        since = f" since {when(holder.acquired_at)}" if holder is not None else ""
        until = f"; its lease runs until {when(holder.expires_at)}" if holder is not None else ""
        waited = f"waited {self.timeout:g} s" if self.timeout else "did not wait (--lock-timeout 0)"
        return LockError(
            f"environment {self.environment!r} is locked by {who}{since}{until}; {waited}",
            hint="let it finish and retry (--lock-timeout waits longer); if that process is "
            f"gone, the lease expires by itself, or `monarch unlock {self.environment}` clears it",
        )

    def _heartbeat(self) -> None:
        interval = self.lease / 3
        last_ok = time.monotonic()
        while not self._stop.wait(interval):
            try:
                if not self.lock.renew(self.owner, self.lease):
                    self._lost = "it was cleared or taken over by another process"
                    return
                last_ok = time.monotonic()
            except MonarchError as error:
                # A blip is survivable; a lease we could not renew in time is not ours anymore.
                if time.monotonic() - last_ok >= self.lease:
                    self._lost = f"its lease could not be renewed ({error})"
                    return
                log.warning("could not renew the migration lock (%s); retrying", error)
