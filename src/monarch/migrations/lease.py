"""Holding an environment's lock: waiting for it, renewing its lease, noticing its loss.

Every command that changes an environment holds it (see :mod:`monarch.api.locking`): migration
runs, history repairs, restores, copies into it, drops.

The engine's :class:`~monarch.history.MigrationLock` provides the atomic primitives;
this module adds what every engine shares: the bounded wait with a message naming the holder, a
heartbeat thread that renews the lease while migrations run, and ``check()``, which the runner
calls between migrations (and batches) to stop when the lock was lost.

A busy server (:class:`~monarch.errors.ServerBusy`: FerretDB's "database is locked", a write
conflict, a dropped connection) is retried with growing pauses everywhere here: taking the lock
(within the wait), renewing it (until the lease would run out, then the run stops at the next
check) and releasing it. An engine's ``try_acquire`` that fails leaves no record of its own behind.
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
from monarch.errors import LockError, MonarchError, ServerBusy
from monarch.history import LockHolder, LockOwner, MigrationLock
from monarch.migrations.progress import Notices
from monarch.migrations.results import when
from monarch.retry import backoff, retrying

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
        reporter: Notices,
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
        self._held = False

    def __enter__(self) -> Lease:
        try:
            self._acquire()
            self._thread = threading.Thread(
                target=self._heartbeat, name="monarch-lock-heartbeat", daemon=True
            )
            self._thread.start()
        except BaseException:
            # An interrupt right after the lock was taken must not leave it held.
            if self._held:
                self._release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.pause()
        if self._held:
            self._release()

    def pause(self) -> None:
        """Stop renewing the lease; the lock stays held until released or its lease ends."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def forget(self) -> None:
        """Let go of the lock without a word to the database: for a command that removed the
        database the lock lived in (writing to it would create it again)."""
        self.pause()
        self._held = False

    def _release(self) -> None:
        try:
            retrying(lambda: self.lock.release(self.owner))
        except MonarchError as error:
            # Not fatal: the lease runs out by itself.
            log.warning(
                "could not release the migration lock of %r (%s); it is free once its lease "
                "expires, or at once with `monarch unlock %s`",
                self.environment,
                error,
                self.environment,
            )
        self._held = False

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
        failures = 0
        while True:
            try:
                attempt = self.lock.try_acquire(self.owner, self.lease)
            except ServerBusy as error:
                # Retried within the wait (a few times even without one): a busy moment is
                # not a reason to give up, nor to make the user wait for a lease.
                failures += 1
                if time.monotonic() >= deadline and failures > 3:
                    raise LockError(
                        f"could not take the migration lock of {self.environment!r}: the "
                        f"server stayed busy ({error})",
                        hint="run again when the server is less busy (--lock-timeout waits "
                        "longer); nothing was run",
                    ) from error
                if failures == 1:
                    log.warning("the server was busy taking the lock (%s); retrying", error)
                time.sleep(backoff(failures))
                continue
            if attempt.acquired:
                self._held = True
                self.previous = attempt.previous
                return
            failures = 0
            holder = attempt.holder
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._busy(holder)
            if holder is not None and holder.token != announced:
                announced = holder.token
                self.reporter.message(
                    f"waiting up to {remaining:.0f} s for the migration lock of "
                    f"{self.environment!r}, held by {holder.describe()} since "
                    f"{when(holder.acquired_at)} (lease until {when(holder.expires_at)})"
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
        """Renew the lease every third of it; retry a busy server soon, until the lease ends."""
        interval = self.lease / 3
        renewed = time.monotonic()  # when the last successful renewal was sent
        failures = 0
        wait = interval
        while not self._stop.wait(wait):
            sent = time.monotonic()
            try:
                if not self.lock.renew(self.owner, self.lease):
                    self._lost = "it was cleared or taken over by another process"
                    return
            except MonarchError as error:
                # A blip is survivable; a lease we could not renew in time is not ours anymore.
                failures += 1
                left = renewed + self.lease - time.monotonic()
                if left <= 0:
                    self._lost = f"its lease could not be renewed in time ({error})"
                    return
                if failures == 1:
                    log.warning("could not renew the migration lock (%s); retrying", error)
                wait = min(backoff(failures), left)
                continue
            renewed, failures, wait = sent, 0, interval
