"""Write accounting on MongoDB: a command listener on the client monarch creates.

Every write pymongo makes goes out as one of a few commands (``insert``, ``update``,
``delete``, ``findAndModify``, index and collection commands), whether the caller used
``insert_many``, ``bulk_write``, ``find_one_and_update`` or a loop over ``batches()``; the
server's reply says how many documents each touched. The listener reads those replies while the
ledger's window is open and counts them against the command's collection.

Not counted: writes through another client, ``aggregate`` with ``$out``/``$merge``,
unacknowledged (``w=0``) writes (their reply holds no counts), and monarch's own collections.
``findAndModify`` counts as matched, not modified: its reply does not say whether the document
changed.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from monarch.accounting import Counts, Ledger

if TYPE_CHECKING:
    from pymongo.monitoring import (
        CommandFailedEvent,
        CommandListener,
        CommandStartedEvent,
        CommandSucceededEvent,
    )

WRITES = frozenset(
    {"insert", "update", "delete", "findAndModify", "createIndexes", "dropIndexes", "drop",
     "create"}
)


def write_listener(ledger: Ledger, database: str) -> CommandListener:
    """A pymongo command listener counting into ``ledger`` (give it to ``MongoClient``)."""
    listener: CommandListener = _listener_type()(ledger, database)
    return listener


@cache
def _listener_type() -> type[Any]:
    # pymongo accepts only subclasses of its listener classes; pymongo stays unloaded until a
    # client is made.
    from pymongo.monitoring import CommandListener

    return type("WriteListener", (WriteCounter, CommandListener), {})


class WriteCounter:
    """Counts the replies of write commands into ``ledger`` (``database``'s collections by
    name, other databases' as ``db.collection``): the methods of a pymongo CommandListener."""

    def __init__(self, ledger: Ledger, database: str) -> None:
        self._ledger = ledger
        self._database = database
        # (connection, request id) -> (command, target, what the reply alone does not say)
        self._pending: dict[tuple[Any, int], tuple[str, str, Any]] = {}

    def started(self, event: CommandStartedEvent) -> None:
        if not self._ledger.active:
            return
        name = event.command_name
        if name not in WRITES:
            return
        command = event.command
        collection = str(command.get(name, ""))
        if event.database_name == self._database:
            if self._ledger.ignores(collection):
                return
            target = collection
        else:
            target = f"{event.database_name}.{collection}"
        extra: Any = None
        if name == "findAndModify":
            extra = bool(command.get("remove"))
        elif name == "dropIndexes":
            extra = command.get("index")
        self._pending[(event.connection_id, event.request_id)] = (name, target, extra)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if not self._pending:
            return
        entry = self._pending.pop((event.connection_id, event.request_id), None)
        if entry is not None:
            name, target, extra = entry
            self._ledger.add(target, reply_counts(name, event.reply, extra))

    def failed(self, event: CommandFailedEvent) -> None:
        if self._pending:
            self._pending.pop((event.connection_id, event.request_id), None)


def reply_counts(name: str, reply: Any, extra: Any = None) -> Counts:
    """What the reply to the write command ``name`` says it wrote.

    ``extra`` is ``remove`` of a findAndModify, or the ``index`` argument of dropIndexes.
    """
    n = _int(reply.get("n"))
    if name == "insert":
        return Counts(inserted=n)
    if name == "update":
        upserted = len(reply.get("upserted") or ())
        return Counts(matched=max(n - upserted, 0), modified=_int(reply.get("nModified")),
                      upserted=upserted)
    if name == "delete":
        return Counts(deleted=n)
    if name == "findAndModify":
        last = reply.get("lastErrorObject") or {}
        found = _int(last.get("n"))
        if extra:
            return Counts(deleted=found)
        if "upserted" in last:
            return Counts(upserted=found)
        return Counts(matched=found)
    if name == "createIndexes":
        before, after = reply.get("numIndexesBefore"), reply.get("numIndexesAfter")
        created = _int(after) - _int(before) if before is not None and after is not None else 0
        made = 1 if reply.get("createdCollectionAutomatically") else 0
        return Counts(indexes_created=max(created, 0), created=made)
    if name == "dropIndexes":
        if extra == "*":
            return Counts(indexes_dropped=max(_int(reply.get("nIndexesWas")) - 1, 0))
        return Counts(indexes_dropped=len(extra) if isinstance(extra, list) else 1)
    if name == "drop":
        return Counts(dropped=1)
    if name == "create":
        return Counts(created=1)
    return Counts()


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
