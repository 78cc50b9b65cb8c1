"""One lock per environment for every command that changes it, and the audit entries they write.

``migrate``, ``migrate_one``, ``rollback``, ``baseline``, ``mark``, ``accept``, ``restore``,
``copy_db`` (into the environment), ``drop_db`` and ``recover`` all hold the same lock, the
engine's ``migration_lock()``, with the lease, heartbeat, takeover and wait of
:class:`~monarch.migrations.lease.Lease`: of two such commands on one environment, the second
waits up to its lock timeout, saying who holds the lock and since when, then fails naming them.

Commands other than migration runs leave an audit :class:`~monarch.history.Event` in the
environment's history. The audit trail (like the lock) belongs to the environment, not to its
data: backups leave it out, and each engine keeps it across a restore, copy or drop
(MongoDB leaves ``monarch_events`` alone in the swap, PostgreSQL copies it into the database
it swaps in, SQLite keeps it beside the file). The event is written after the work is done; a
failure to write it is reported as a warning and never undoes the work. The exception is a
PostgreSQL restore or copy of a whole database, or drop_db: its swap ends the session that
holds the lock, so the engine writes the event (an :class:`Entry`) into the new database before
the swap, and the data (or the emptiness) and its entry arrive together; a restore or drop
that fails leaves neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monarch.errors import DatabaseMissing, MonarchError, UsageError
from monarch.history import Change, Event, HistoryStore, LockOwner
from monarch.migrations.lease import DEFAULT_LEASE, DEFAULT_TIMEOUT, MIN_LEASE, Lease, current_owner
from monarch.migrations.progress import LoggingReporter, Notices
from monarch.migrations.results import when

if TYPE_CHECKING:
    from monarch.engines.base import Engine

__all__ = [
    "DEFAULT_LEASE", "DEFAULT_TIMEOUT", "Entry", "Held", "check_lock_options", "exclusive",
]


def check_lock_options(lock_timeout: float, lock_lease: float) -> None:
    """Refuse a negative wait or a lease too short to be renewed, before anything connects."""
    if lock_timeout < 0:
        raise UsageError(f"the lock timeout cannot be negative ({lock_timeout:g})")
    if lock_lease < MIN_LEASE:
        raise UsageError(f"the lock lease must be at least {MIN_LEASE:g} s, not {lock_lease:g}")


@dataclass
class Held:
    """The environment's lock as a command holds it.

    ``lease`` is None only where the database does not exist yet (nothing can be migrating
    it, and the engine's own restore lock keeps other restores out).
    """

    environment: str
    owner: LockOwner
    lease: Lease | None
    notices: Notices

    def event(
        self,
        store: HistoryStore,
        kind: str,
        summary: str,
        changes: tuple[Change, ...] = (),
        source: str | None = None,
    ) -> Event:
        """An audit event by this command's owner, now on the server's clock."""
        owner = self.owner
        return Event(
            id=owner.token,
            kind=kind,
            at=store.now(),
            user=owner.user,
            host=owner.host,
            pid=owner.pid,
            command=owner.command,
            version=owner.version,
            summary=summary,
            changes=changes,
            source=source,
        )

    def record(
        self,
        engine: Engine,
        done: str,
        build: Callable[[HistoryStore], Event],
    ) -> Event | None:
        """Write the event ``build`` makes into the environment's history; on failure, warn
        (``done`` says what finished) and return None.
        """
        try:
            store = engine.history()
            event = build(store)
            store.add_event(event)
        except MonarchError as error:
            self.notices.message(
                f"{done}, but it could not be recorded in the history of "
                f"{self.environment!r}: {error}; what was done stays done",
                warning=True,
            )
            return None
        return event

    def entry(self, kind: str, summary: Callable[[int], str], source: str | None = None) -> Entry:
        """The audit entry of a restore, copy or drop, whose ``summary`` says how many
        collections (tables) it put in place (or removed): hand it to the engine's restore or
        drop as ``audit``, then call :meth:`Entry.record`."""
        return Entry(self, kind, summary, source)


@dataclass
class Entry:
    """A restore's, copy's or drop's audit entry (a :data:`~monarch.history.AuditEntry`): the
    engine writes it with the data where its swap ends the lock's session (PostgreSQL), else
    :meth:`record` writes it after the work."""

    held: Held
    kind: str
    summary: Callable[[int], str]
    source: str | None = None
    made: bool = False

    def __call__(self, store: HistoryStore, count: int) -> Event:
        self.made = True
        return self.held.event(store, self.kind, self.summary(count), source=self.source)

    def record(self, engine: Engine, done: str, count: int) -> None:
        """Write the entry into the history unless the engine wrote it with the data (a
        failure is a warning, as for :meth:`Held.record`)."""
        if not self.made:
            self.held.record(engine, done, lambda store: self(store, count))


@contextmanager
def exclusive(
    engine: Engine,
    environment: str,
    command: str,
    *,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    notices: Notices | None = None,
) -> Iterator[Held]:
    """Hold ``environment``'s lock (``engine.migration_lock()``) for the block.

    Waits up to ``lock_timeout`` seconds (LockError naming the holder and since when after
    that); ``lock_lease`` is how long the lock outlives a process that dies. ``command`` (e.g.
    ``restore production``) is what a waiting process is told the holder is doing.
    """
    check_lock_options(lock_timeout, lock_lease)
    report = notices or LoggingReporter()
    owner = current_owner(command)
    lease = Lease(
        engine.migration_lock(),
        owner,
        environment=environment,
        lease=lock_lease,
        timeout=lock_timeout,
        reporter=report,
    )
    try:
        lease.__enter__()
    except DatabaseMissing:
        yield Held(environment, owner, None, report)
        return
    try:
        # What was read before the wait may be of a database that a restore has replaced since.
        engine.disconnect()
        if lease.previous is not None:
            report.message(
                f"took over the lock of {environment!r} from {lease.previous.describe()}, "
                f"whose lease expired at {when(lease.previous.expires_at)}",
                warning=True,
            )
        yield Held(environment, owner, lease, report)
    finally:
        lease.__exit__(None, None, None)
