"""An in-memory engine for migrations: a real implementation of the store protocols.

It lets the engine-independent runner be tested where the real server lacks a feature (FerretDB
has no transactions), and shows other engines the contract in a few lines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from monarch.accounting import Ledger
from monarch.errors import TransactionUnsupported
from monarch.history import Acquisition, Event, LockHolder, LockOwner, Record


@dataclass
class Transaction:
    writes: list[Record] = field(default_factory=list)


class MemoryHistory:
    def __init__(self, *, transactions: bool) -> None:
        self.saved: dict[str, Record] = {}
        self.stored_events: dict[str, Event] = {}
        self.transactions = transactions
        self.committed = 0
        self.aborted = 0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def records(self) -> dict[str, Record]:
        return {name: replace(r, checkpoint=dict(r.checkpoint)) for name, r in self.saved.items()}

    def save(self, record: Record, *, session: object | None = None) -> None:
        copy = replace(record, checkpoint=dict(record.checkpoint))
        if isinstance(session, Transaction):
            session.writes.append(copy)
        else:
            self.saved[record.name] = copy

    def save_checkpoint(
        self, name: str, checkpoint: dict[str, dict[str, Any]], *, session: object | None = None
    ) -> None:
        self.save(replace(self.saved[name], checkpoint=dict(checkpoint)), session=session)

    def supports_transactions(self) -> bool:
        return self.transactions

    def events(self, limit: int | None = None) -> list[Event]:
        newest = sorted(self.stored_events.values(), key=lambda e: (e.at, e.id), reverse=True)
        return newest[:limit] if limit is not None else newest

    def add_event(self, event: Event) -> None:
        self.stored_events.setdefault(event.id, event)

    @contextmanager
    def transaction(self) -> Iterator[object]:
        if not self.transactions:
            raise TransactionUnsupported("this memory store has no transactions")
        txn = Transaction()
        try:
            yield txn
        except BaseException:
            self.aborted += 1
            raise
        for record in txn.writes:
            self.saved[record.name] = record
        self.committed += 1


class MemoryLock:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holder: tuple[LockOwner, datetime, datetime] | None = None

    def try_acquire(self, owner: LockOwner, lease: float) -> Acquisition:
        with self._mutex:
            now = datetime.now(UTC)
            current = self.holder()
            if current is not None and not current.expired:
                return Acquisition(False, holder=current)
            self._holder = (owner, now, now + timedelta(seconds=lease))
            return Acquisition(True, previous=current)

    def renew(self, owner: LockOwner, lease: float) -> bool:
        with self._mutex:
            if self._holder is None or self._holder[0].token != owner.token:
                return False
            now = datetime.now(UTC)
            self._holder = (owner, self._holder[1], now + timedelta(seconds=lease))
            return True

    def release(self, owner: LockOwner) -> None:
        with self._mutex:
            if self._holder is not None and self._holder[0].token == owner.token:
                self._holder = None

    def holder(self) -> LockHolder | None:
        if self._holder is None:
            return None
        owner, since, until = self._holder
        return LockHolder(
            owner.token,
            owner.user,
            owner.host,
            owner.pid,
            owner.command,
            since,
            until,
            datetime.now(UTC),
        )

    def clear(self, by: LockOwner) -> LockHolder | None:
        with self._mutex:
            cleared, self._holder = self.holder(), None
            return cleared


class MemoryEngine:
    """Just what the runner needs from an engine."""

    name = "memory"

    def __init__(self, *, transactions: bool = True) -> None:
        self.store = MemoryHistory(transactions=transactions)
        self.lock = MemoryLock()
        self.context: dict[str, Any] = {"data": []}
        self.ledger = Ledger()

    def history(self) -> MemoryHistory:
        return self.store

    def migration_lock(self, name: str = "migrate") -> MemoryLock:
        return self.lock

    def migration_context(self) -> dict[str, Any]:
        return self.context

    def disconnect(self) -> None:
        pass

    def close(self) -> None:
        pass
