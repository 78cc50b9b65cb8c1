"""Migration history in MongoDB: the ``monarch_migrations`` collection, and the server's clock.

One document per migration, ``_id`` = the migration's name. Audit events (repairs, restores,
copies, drops) are documents of ``monarch_events``, ``_id`` = the event's id. Transactions are
used only where the server has them (a replica set or sharded cluster; not a standalone server,
not FerretDB).

The history that monarch 0.0.x left in ``mongo_migration_history`` is read in place alongside (see
:mod:`.legacy_history`); the first time monarch saves a record for one of its names, the new
document says where it came from (``source: "monarch 0.0.x"``, ``imported_from``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from monarch.engines.mongo.errors import translated
from monarch.engines.mongo.legacy_history import legacy_documents, legacy_record, provenance
from monarch.errors import TransactionUnsupported
from monarch.history import EVENTS_NAME, HISTORY_NAME, Event, Record
from monarch.retry import retrying

if TYPE_CHECKING:
    from pymongo.client_session import ClientSession
    from pymongo.collection import Collection

    from monarch.engines.mongo import MongoEngine

HISTORY_COLLECTION = HISTORY_NAME
EVENTS_COLLECTION = EVENTS_NAME


class ServerClock:
    """The server's time, estimated once from ``hello``'s ``localTime`` and the round trip.

    Leases are compared on this clock so that machines with skewed clocks agree on expiry.
    """

    def __init__(self, engine: MongoEngine) -> None:
        self._engine = engine
        self._offset: timedelta | None = None

    def now(self) -> datetime:
        if self._offset is None:
            self._offset = self._measure()
        return datetime.now(UTC) + self._offset

    def _measure(self) -> timedelta:
        with translated(self._engine.environment, "reading the server's clock"):
            before = time.time()
            hello = self._engine.client.admin.command("hello")
            after = time.time()
        server = hello.get("localTime")
        if not isinstance(server, datetime):
            return timedelta(0)  # a server that does not say: trust our own clock
        if server.tzinfo is None:
            server = server.replace(tzinfo=UTC)
        return timedelta(seconds=server.timestamp() - (before + after) / 2)


class MongoHistory:
    """:class:`~monarch.history.HistoryStore` over ``monarch_migrations``."""

    def __init__(self, engine: MongoEngine, clock: ServerClock) -> None:
        self._engine = engine
        self._clock = clock
        self._transactions: bool | None = None
        self._legacy: dict[str, list[dict[str, Any]]] = {}

    @property
    def _collection(self) -> Collection[dict[str, Any]]:
        return self._engine.db[HISTORY_COLLECTION]

    def now(self) -> datetime:
        return self._clock.now()

    def records(self) -> dict[str, Record]:
        def read() -> list[dict[str, Any]]:
            with translated(self._engine.environment, "reading the migration history"):
                found = list(self._collection.find({}))
                self._legacy = legacy_documents(self._engine.db)
            return found

        docs = retrying(read)
        records = {}
        for doc in docs:
            record = Record.from_dict({**doc, "name": str(doc["_id"])})
            records[record.name] = record
        for key, legacy in self._legacy.items():
            if key not in records:
                records[key] = legacy_record(key, legacy)
        return records

    def save(self, record: Record, *, session: object | None = None) -> None:
        doc = record.to_dict()
        name = doc.pop("name")
        update: dict[str, Any] = {"$set": doc}
        legacy = self._legacy.get(name)
        if legacy:
            # Only when the document is created: where its history began stays said.
            update["$setOnInsert"] = provenance(legacy, self.now())
        # $set, not a replacement: fields this version does not know are kept.
        self._write(
            f"recording migration {name}",
            session,
            lambda: self._collection.update_one(
                {"_id": name}, update, upsert=True, session=_session(session)
            ),
        )

    def save_checkpoint(
        self, name: str, checkpoint: dict[str, dict[str, Any]], *, session: object | None = None
    ) -> None:
        items = [{"key": key, **value} for key, value in checkpoint.items()]
        self._write(
            f"saving the checkpoint of {name}",
            session,
            lambda: self._collection.update_one(
                {"_id": name}, {"$set": {"checkpoint": items}}, session=_session(session)
            ),
        )

    def events(self, limit: int | None = None) -> list[Event]:
        def read() -> list[dict[str, Any]]:
            with translated(self._engine.environment, "reading the audit events"):
                cursor = self._engine.db[EVENTS_COLLECTION].find({}).sort([("at", -1), ("_id", -1)])
                if limit is not None:
                    cursor = cursor.limit(limit)
                return list(cursor)

        return [Event.from_dict({**doc, "id": str(doc["_id"])}) for doc in retrying(read)]

    def add_event(self, event: Event) -> None:
        doc = event.to_dict()
        key = doc.pop("id")
        # $setOnInsert: an event stored already stays exactly as it was written.
        self._write(
            f"recording the {event.kind} event",
            None,
            lambda: self._engine.db[EVENTS_COLLECTION].update_one(
                {"_id": key}, {"$setOnInsert": doc}, upsert=True
            ),
        )

    def _write(self, doing: str, session: object | None, call: Callable[[], object]) -> None:
        """One idempotent write, retried while the server is busy; inside a transaction only
        once (a busy error aborts the transaction: its owner decides)."""

        def attempt() -> None:
            with translated(self._engine.environment, doing):
                call()

        if session is not None:
            attempt()
        else:
            retrying(attempt)

    def supports_transactions(self) -> bool:
        if self._transactions is None:
            self._transactions = self._engine.server_info().supports_transactions
        return self._transactions

    @contextmanager
    def transaction(self) -> Iterator[object]:
        if not self.supports_transactions():
            raise TransactionUnsupported(
                f"the server of environment {self._engine.environment.name!r} has no "
                "transactions (FerretDB and standalone servers have none)"
            )
        import pymongo.errors

        env = self._engine.environment
        with translated(env, "starting a transaction"):
            session = self._engine.client.start_session()
            session.start_transaction()
        try:
            try:
                yield session
            except BaseException:
                # The block's own error is what matters; a failed abort only adds noise.
                with suppress(pymongo.errors.PyMongoError):
                    session.abort_transaction()
                raise
            with translated(env, "committing a transaction"):
                session.commit_transaction()
        finally:
            session.end_session()


def _session(session: object | None) -> ClientSession | None:
    # The runner passes back exactly what transaction() yielded: a pymongo ClientSession.
    return cast("ClientSession | None", session)
