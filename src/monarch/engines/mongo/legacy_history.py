"""The migration history of monarch 0.0.x (collection ``mongo_migration_history``), read in place.

monarch 0.0.x kept one mongoengine document per migration file, ``{_id, key: <file stem>,
state: "New" | "Processing" | "Failed" | "Completed"}`` (``processed_at`` was declared but rarely
set). Each document becomes a :class:`~monarch.history.Record` whose ``version`` is
``0.0.x``, so that planning can treat it with care:

- ``Completed`` -> applied; ``New`` (or no state) -> new, which runs like pending;
- ``Failed`` -> failed and ``Processing`` (a run that never finished) -> interrupted: monarch runs
  them again only when asked by name (``migrate_one``), since their changes may be half made;
- several documents for one key that disagree, or a state 0.0.x never wrote -> interrupted too.

monarch never writes this collection; a record monarch writes for the same name in
``monarch_migrations`` takes precedence over it (see :class:`.history.MongoHistory`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monarch.history import (
    APPLIED,
    FAILED,
    INTERRUPTED,
    LEGACY_HISTORY_NAME,
    LEGACY_VERSION,
    NEW,
    Record,
)

if TYPE_CHECKING:
    from pymongo.database import Database

LEGACY_COLLECTION = LEGACY_HISTORY_NAME
SOURCE = "monarch 0.0.x"

_STATES = {
    "Completed": (APPLIED, None),
    "New": (NEW, None),
    "Failed": (FAILED, f"Failed under {SOURCE}, which kept no error text"),
    "Processing": (
        INTERRUPTED,
        f"left Processing by {SOURCE}: its run never finished, so some of its changes may be "
        "in the database",
    ),
}


def legacy_documents(db: Database[Any]) -> dict[str, list[dict[str, Any]]]:
    """The 0.0.x history documents by key, in insertion order (empty without the collection)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in db[LEGACY_COLLECTION].find({}).sort("_id", 1):
        key = doc.get("key")
        if isinstance(key, str) and key:
            found.setdefault(key, []).append(doc)
    return found


def legacy_record(key: str, docs: list[dict[str, Any]]) -> Record:
    """The record that the 0.0.x documents ``docs`` (all with ``key``) amount to."""
    states = sorted({str(doc.get("state") or "New") for doc in docs})
    state: str
    error: str | None
    if len(states) > 1:
        state, error = (
            INTERRUPTED,
            (
                f"{SOURCE} left {len(docs)} history records for it with different states "
                f"({', '.join(states)}), so whether it ran is not known"
            ),
        )
    else:
        state, error = _STATES.get(
            states[0],
            (INTERRUPTED, f"{SOURCE} recorded it in the unknown state {states[0]!r}"),
        )
    times = [doc["processed_at"] for doc in docs if isinstance(doc.get("processed_at"), datetime)]
    at = max(times) if times else None
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return Record(
        name=key,
        state=state,
        checksum="",  # 0.0.x kept none: drift is measured from monarch's first sight of the file
        version=LEGACY_VERSION,
        error=error,
        finished_at=at,
        applied_at=at if state == APPLIED else None,
    )


def provenance(docs: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Fields saying where an imported record came from, stored beside the record."""
    return {
        "source": SOURCE,
        "imported_from": {
            "collection": LEGACY_COLLECTION,
            "ids": [doc["_id"] for doc in docs],
            "states": [doc.get("state") for doc in docs],
            "imported_at": now,
        },
    }
