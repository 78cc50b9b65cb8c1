"""Splitting one big collection into ``_id`` ranges that the dump reads in parallel.

mongodump reads each collection with one cursor, so a database that is mostly one collection
is read by one thread whatever ``--numParallelCollections`` says. The dump splits such a
collection into half-open ``_id`` ranges instead, one cursor each; the archive then holds
interleaved segments of that namespace, which the mongodump archive format allows (mongorestore
and monarch's reader join them).

Bounds come from the ``_id`` index: the smallest and largest ``_id`` and ``parts - 1`` interior
points at evenly spaced positions (``find().sort(_id).skip(k).limit(1)``, one index walk each).
Ranges compare values only within one BSON type class, so a collection is split only when its
smallest and largest ``_id`` are of the same class (numbers, strings, ObjectIds or dates):
the server's ``_id`` order groups types, so every ``_id`` in between is of that class too, and
the ranges ``[-inf, b1), [b1, b2), ..., [bn, +inf)`` hold every document exactly once.
Documents written during the dump may or may not be read, as with a single cursor.
"""

from __future__ import annotations

import datetime
import itertools
from typing import TYPE_CHECKING, Any

from bson import Decimal128, Int64, ObjectId

if TYPE_CHECKING:
    from pymongo.collection import Collection

SPLIT_BYTES = 64 * 1024 * 1024
"""A collection is split into ranges of about this many bytes (at most one per reader)."""

_CLASSES: tuple[tuple[type, ...], ...] = (
    (int, float, Int64, Decimal128),
    (str,),
    (ObjectId,),
    (datetime.datetime,),
)


def parts_for(size: int | None, parallel: int, split_bytes: int = SPLIT_BYTES) -> int:
    """How many ranges a collection of ``size`` bytes is read in: 1 (no split) up to
    ``parallel``."""
    if not size or parallel < 2 or size < 2 * split_bytes:
        return 1
    return int(min(parallel, size // split_bytes))


def id_ranges(collection: Collection[Any], documents: int, parts: int) -> list[dict[str, Any]]:
    """Filters that cover ``collection`` in ``parts`` (or fewer) disjoint ``_id`` ranges.

    ``documents`` is the estimated count, used to place the bounds. Returns ``[{}]`` (the whole
    collection, one cursor) when the collection cannot be split safely.
    """
    if parts < 2 or documents < parts:
        return [{}]
    ends = [_first_id(collection, 1), _first_id(collection, -1)]
    if any(end is None for end in ends) or _class(ends[0]) is None \
            or _class(ends[0]) != _class(ends[1]):
        return [{}]
    bounds: list[Any] = []
    for k in range(1, parts):
        found = _first_id(collection, 1, skip=documents * k // parts)
        if found is None or _class(found) != _class(ends[0]):
            return [{}]
        if not bounds or found != bounds[-1]:
            bounds.append(found)
    if not bounds:
        return [{}]
    ranges: list[dict[str, Any]] = [{"_id": {"$lt": bounds[0]}}]
    ranges += [{"_id": {"$gte": lo, "$lt": hi}}
               for lo, hi in itertools.pairwise(bounds)]
    ranges.append({"_id": {"$gte": bounds[-1]}})
    return ranges


def _first_id(collection: Collection[Any], direction: int, skip: int = 0) -> Any:
    found = list(collection.find({}, {"_id": 1}).sort("_id", direction).skip(skip).limit(1))
    return found[0]["_id"] if found else None


def _class(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    for i, kinds in enumerate(_CLASSES):
        if isinstance(value, kinds):
            return i
    return None
