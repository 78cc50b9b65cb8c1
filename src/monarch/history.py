"""What an engine stores for migrations: history records and the lock.

These are the only database-specific pieces of the migrations feature. An engine (MongoDB,
PostgreSQL, SQLite) implements :class:`HistoryStore` and :class:`MigrationLock`; the
runner, planner and lease logic of :mod:`monarch.migrations` use nothing else. Every method raises a
:class:`~monarch.errors.MonarchError` (usually ``ConnectionFailed``) on a driver failure, never a
driver exception.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Protocol

from monarch.accounting import Accounting

# Record states.
RUNNING = "running"
APPLIED = "applied"
FAILED = "failed"
INTERRUPTED = "interrupted"
ROLLED_BACK = "rolled_back"
NEW = "new"  # recorded but never run: only monarch 0.0.x wrote such records
STATES = (RUNNING, APPLIED, FAILED, INTERRUPTED, ROLLED_BACK, NEW)

# The ``version`` of a record that monarch 0.0.x wrote and no run of monarch has replaced since.
LEGACY_VERSION = "0.0.x"

# What the record's last run did.
MIGRATE = "migrate"
ROLLBACK = "rollback"

# monarch's own bookkeeping in a database, by the collection's or table's name (PostgreSQL's in
# whichever schema holds it): every engine names its history, lock and audit trail so.
HISTORY_NAME = "monarch_migrations"
LOCK_NAME = "monarch_lock"
EVENTS_NAME = "monarch_events"
LEGACY_HISTORY_NAME = "mongo_migration_history"
"""monarch 0.0.x's history collection (MongoDB)."""
BOOKKEEPING = frozenset({HISTORY_NAME, LOCK_NAME, EVENTS_NAME, LEGACY_HISTORY_NAME})
"""The names above: not the application's data, so a fingerprint
(:meth:`monarch.engines.base.Engine.fingerprint`) leaves them out."""
# Kinds of audit events: changes to an environment that are not migration runs.
BASELINE = "baseline"
MARK = "mark"
ACCEPT = "accept"
RESTORE = "restore"
COPY_DB = "copy_db"
DROP_DB = "drop_db"
RECOVER = "recover"
EVENT_KINDS = (BASELINE, MARK, ACCEPT, RESTORE, COPY_DB, DROP_DB, RECOVER)


@dataclass
class Record:
    """The history of one migration on one environment (one record per migration name).

    ``checkpoint`` maps a resumable loop's key (e.g. a collection name) to its saved position;
    ``run_id`` is the lock token of the run that wrote the record last; ``transactional`` says
    whether that run's work was inside a transaction (so a run that died left none of it);
    ``accounting`` is what that run wrote (None in records from before monarch counted writes).
    """

    name: str
    state: str
    checksum: str
    action: str = MIGRATE
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    user: str = ""
    host: str = ""
    pid: int = 0
    version: str = ""
    error: str | None = None
    run_count: int = 0
    checkpoint: dict[str, dict[str, Any]] = field(default_factory=dict)
    backup: str | None = None
    out_of_order: bool = False
    run_id: str | None = None
    applied_at: datetime | None = None
    transactional: bool = False
    accounting: Accounting | None = None

    @property
    def who(self) -> str:
        """``user@host`` of the last run."""
        return f"{self.user}@{self.host}"

    @property
    def legacy(self) -> bool:
        """Whether monarch 0.0.x wrote this record and monarch has not run the migration since."""
        return self.version == LEGACY_VERSION

    @property
    def error_line(self) -> str:
        """The first line of the error (the exception), or an empty string."""
        return (self.error or "").strip().splitlines()[0] if (self.error or "").strip() else ""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for storage; the checkpoint becomes a list (its keys may hold dots)."""
        data = asdict(self)
        data["checkpoint"] = [{"key": k, **v} for k, v in self.checkpoint.items()]
        data["accounting"] = self.accounting.to_json() if self.accounting is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Build a record from stored data, ignoring fields this version does not know."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        raw = values.get("checkpoint") or []
        values["checkpoint"] = {
            str(item["key"]): {k: v for k, v in item.items() if k != "key"}
            for item in raw
            if isinstance(item, dict) and "key" in item
        }
        values["accounting"] = Accounting.from_json(values.get("accounting"))
        return cls(**values)


@dataclass(frozen=True)
class LockOwner:
    """Who asks for the lock: written into the lock so others can name the holder."""

    token: str
    user: str
    host: str
    pid: int
    command: str
    version: str

    @property
    def who(self) -> str:
        return f"{self.user}@{self.host}"


@dataclass(frozen=True)
class LockHolder:
    """The lock as stored, read at ``checked_at`` (server clock)."""

    token: str
    user: str
    host: str
    pid: int
    command: str
    acquired_at: datetime
    expires_at: datetime
    checked_at: datetime

    @property
    def expired(self) -> bool:
        """Whether the lease ran out (the holder stopped renewing it: it is gone or stuck)."""
        return self.expires_at <= self.checked_at

    def describe(self) -> str:
        """One line naming the holder, e.g. ``alice@web1 (pid 42, `migrate production`)``."""
        return f"{self.user}@{self.host} (pid {self.pid}, `{self.command}`)"


@dataclass(frozen=True)
class Acquisition:
    """The outcome of one attempt to take the lock.

    ``acquired`` says whether we hold it now; ``holder`` is the other holder when we do not;
    ``previous`` is the expired, never-released holder we took over from, if any.
    """

    acquired: bool
    holder: LockHolder | None = None
    previous: LockHolder | None = None


@dataclass(frozen=True)
class Change:
    """One thing an audited command changed: ``what`` of ``subject``, ``before`` -> ``after``.

    For a repair, ``subject`` is a migration and ``what`` is ``state`` or ``checksum``; for a
    restore, copy or drop, ``subject`` is the database and ``what`` says what replaced it.
    """

    subject: str
    what: str
    before: str | None
    after: str | None

    def describe(self) -> str:
        return f"{self.subject}: {self.what} {self.before or '-'} -> {self.after or '-'}"


@dataclass(frozen=True)
class Event:
    """An audit entry: who changed an environment outside a migration run, when, from where,
    and what changed.

    ``id`` is unique (the lock token of the command that wrote it), so writing the same event
    twice stores it once. ``at`` is on the server's clock. ``summary`` is one line for people;
    ``changes`` the details; ``source`` the backup or environment a restore or copy came from.
    """

    id: str
    kind: str
    at: datetime
    user: str
    host: str
    pid: int
    command: str
    version: str
    summary: str
    changes: tuple[Change, ...] = ()
    source: str | None = None

    @property
    def who(self) -> str:
        return f"{self.user}@{self.host}"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for storage (``changes`` as a list of dicts)."""
        data = asdict(self)
        data["changes"] = [asdict(change) for change in self.changes]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Build an event from stored data, ignoring fields this version does not know."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        names = {f.name for f in fields(Change)}
        values["changes"] = tuple(
            Change(**{k: v for k, v in item.items() if k in names})
            for item in values.get("changes") or ()
            if isinstance(item, dict)
        )
        values["pid"] = int(values.get("pid") or 0)
        return cls(**values)


class HistoryStore(Protocol):
    """Migration records of one environment, and its transactions.

    ``session`` arguments take what :meth:`transaction` yielded, so that a write joins it.
    """

    def now(self) -> datetime:
        """The server's current time (timezone-aware UTC), as well as it can be estimated."""
        ...

    def records(self) -> dict[str, Record]:
        """Every record, by migration name (empty when nothing was ever recorded)."""
        ...

    def save(self, record: Record, *, session: object | None = None) -> None:
        """Create or replace the record named ``record.name``."""
        ...

    def save_checkpoint(
        self, name: str, checkpoint: dict[str, dict[str, Any]], *, session: object | None = None
    ) -> None:
        """Replace only the checkpoint of the record ``name`` (which exists)."""
        ...

    def supports_transactions(self) -> bool:
        """Whether :meth:`transaction` can make several writes atomic on this server."""
        ...

    def events(self, limit: int | None = None) -> list[Event]:
        """The audit events, newest first (at most ``limit``); empty when none was written.

        Reading creates nothing (no table, no file).
        """
        ...

    def add_event(self, event: Event) -> None:
        """Store ``event`` unless an event with its ``id`` is stored already (so that writing
        the same events again, as a restore does with the events it replaced, adds nothing)."""
        ...

    def transaction(self) -> AbstractContextManager[object]:
        """Begin a transaction; it commits when the block ends and aborts on an exception.

        Raises TransactionUnsupported when the server has no transactions.
        """
        ...


AuditEntry = Callable[[HistoryStore, int], Event]
"""Makes a restore's, copy's or drop's audit event from the history it goes into and the number
of collections (tables) put in place or removed: see :meth:`monarch.engines.base.Engine.restore`
and :meth:`~monarch.engines.base.Engine.drop`."""


class MigrationLock(Protocol):
    """A lease-based lock: one holder at a time, taken over once its lease expires.

    The lease is measured on the server's clock, so the clocks of competing machines do not
    matter. Implementations must make :meth:`try_acquire` atomic: of any number of concurrent
    callers, at most one gets ``acquired=True``.
    """

    def try_acquire(self, owner: LockOwner, lease: float) -> Acquisition:
        """Take the lock if it is free or its lease expired; never waits."""
        ...

    def renew(self, owner: LockOwner, lease: float) -> bool:
        """Extend ``owner``'s lease; False if ``owner`` no longer holds the lock."""
        ...

    def release(self, owner: LockOwner) -> None:
        """Give the lock up (nothing happens if ``owner`` no longer holds it)."""
        ...

    def holder(self) -> LockHolder | None:
        """The current holder (possibly with an expired lease), or None when the lock is free."""
        ...

    def clear(self, by: LockOwner) -> LockHolder | None:
        """Force the lock free, whoever holds it; returns who held it, if anyone."""
        ...
