"""Walking a MongoDB collection by ``_id`` ranges, resumably.

MongoDB compares ``_id`` values only within one type class (``{$gt: 5}`` never matches a
string), so a collection whose ``_id`` values mix types (numbers, strings, ObjectIds...) is walked
one type class at a time, in the server's sort order; the checkpoint remembers which classes are
done. Each query is ``_id > last`` sorted by ``_id`` with a limit: nothing stays open between
batches, however long a batch takes.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from monarch.errors import MigrationError

if TYPE_CHECKING:
    from pymongo.client_session import ClientSession
    from pymongo.collection import Collection

LAST_ID = "last_id"
DONE_TYPES = "done_types"
DONE = "done"


def walk(
    collection: Collection[dict[str, Any]],
    *,
    filter: dict[str, Any],
    size: int,
    projection: dict[str, Any] | None,
    state: dict[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
    report: Callable[[int, int | None], None],
    session: object | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield batches; call ``save(state)`` after each batch is processed (see ``batches``)."""
    if size < 1:
        raise MigrationError(f"batches(): size must be at least 1, not {size}")
    sess: ClientSession | None = session  # type: ignore[assignment]
    state = dict(state or {})
    done_types: list[str] = list(state.get(DONE_TYPES) or [])
    done = int(state.get(DONE) or 0)
    if filter or sess is not None:
        total = collection.count_documents(filter, session=sess)
    else:
        total = collection.estimated_document_count()  # metadata only: instant on any size
    report(done, total)
    while True:
        if LAST_ID in state:
            position: dict[str, Any] = {"_id": {"$gt": state[LAST_ID]}}
        elif done_types:
            position = {"_id": {"$not": {"$type": done_types}}}
        else:
            position = {}
        query = {"$and": [filter, position]} if filter and position else (filter or position)
        batch = list(
            collection.find(query, projection, sort=[("_id", 1)], limit=size, session=sess)
        )
        if not batch:
            if LAST_ID not in state:
                return
            # This type class of _id values is exhausted; go on with the next one.
            done_types.append(_type_class(state.pop(LAST_ID)))
            state[DONE_TYPES] = done_types
            continue
        yield batch
        # Reached only when the caller asks for the next batch: this one is processed.
        done += len(batch)
        # A batch that crosses type classes (sorted, so earlier classes are complete) finishes
        # every class but its last one.
        last_class = _type_class(batch[-1]["_id"])
        for doc in batch:
            kind = _type_class(doc["_id"])
            if kind != last_class and kind not in done_types:
                done_types.append(kind)
        state[LAST_ID] = batch[-1]["_id"]
        state[DONE] = done
        state[DONE_TYPES] = done_types
        save(state)
        report(done, max(total, done))


def _type_class(value: object) -> str:
    """The ``$type`` alias of the class of values a ``$gt`` on ``value`` can reach."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Int64 | Decimal128):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, ObjectId):
        return "objectId"
    if isinstance(value, datetime.datetime):
        return "date"
    if isinstance(value, bytes | Binary | uuid.UUID):
        return "binData"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, Timestamp):
        return "timestamp"
    if isinstance(value, Regex | re.Pattern):
        return "regex"
    if isinstance(value, MinKey):
        return "minKey"
    if isinstance(value, MaxKey):
        return "maxKey"
    raise MigrationError(f"batches(): cannot walk past an _id of type {type(value).__name__}")
