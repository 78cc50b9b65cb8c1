"""Carrying out a recorded swap: forward to the backup, or (when that cannot be) back.

The state machine is described in :mod:`monarch.engines.mongo.journal`. Every function here
reads what the database holds now and does only what is left, so each can be interrupted and
called again.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bson import json_util

from monarch.engines.mongo._moves import (
    JOURNAL,
    STAGING_PREFIX,
    drop_all,
    is_operational,
    move,
    names,
    probe_token,
    reason,
)
from monarch.engines.mongo._owner import recently_alive, wait_for_drain
from monarch.errors import BackupError

if TYPE_CHECKING:
    from pymongo.database import Database

LOCK_ID = "restore"
SWAP_STATES = ("aside", "placing", "dropping", "undoing")
SETTLE_SECONDS = 1.0
"""After dropping staging that a command still running on the server may re-create, watch this
long for it to reappear (see :data:`monarch.engines.mongo._owner.DRAIN_SECONDS`)."""


class SwapUndone(BackupError):
    """The swap could not be finished and was undone: the target holds its old contents."""


def finish(db: Database[Any], doc: dict[str, Any]) -> str:
    """Bring an abandoned journal to its end: roll back ``loading``, roll forward the rest.

    Returns a sentence saying what was done. Every step is idempotent, so a crash inside this
    function is finished by the next call.
    """
    state, token = doc.get("state"), doc.get("token")
    started = doc.get("started")
    when = f" started {started:%Y-%m-%d %H:%M:%S} UTC" if isinstance(started, datetime) else ""
    who = f"a restore{when} (pid {doc.get('pid')} on {doc.get('host')})"
    if not isinstance(token, str) or state not in ("loading", *SWAP_STATES):
        raise BackupError(
            f"the restore journal in {db.name!r} is not one monarch wrote (state {state!r}, "
            f"token {token!r}); nothing was done",
            hint=f"inspect the collection {JOURNAL} in {db.name!r} and remove it by hand",
        )
    if state == "loading":
        db[JOURNAL].delete_one({"_id": LOCK_ID, "token": token})
        drop_staging(db, token, settle=recently_alive(doc))
        return f"{who} was interrupted before its swap; its staging collections were removed"
    wait_for_drain(doc)  # a late rename of the dead restore must not land after ours
    try:
        carry_out(db, doc)
    except SwapUndone as exc:
        return (f"{who} was interrupted during its swap, which could not be finished "
                f"({exc.message}); it was undone and the target holds its old contents")
    if state == "undoing":
        return f"{who} was undoing its swap; the target holds its old contents again"
    return f"{who} was interrupted during its swap; the swap was finished"


def carry_out(db: Database[Any], doc: dict[str, Any]) -> None:
    """Finish the swap recorded in ``doc``, or undo it if it cannot be finished.

    Raises :class:`SwapUndone` when it was undone; any other error leaves the journal for the
    next run (a lost connection, or a swap that can be neither finished nor undone).
    """
    from pymongo.errors import OperationFailure

    if doc["state"] != "undoing":
        try:
            _roll_forward(db, doc)
            return
        except (OperationFailure, BackupError) as exc:
            if doc["state"] == "dropping":
                raise  # everything is in place: only drops are left, the next run does them
            why = reason(exc) if isinstance(exc, OperationFailure) else exc.message
            doc = _start_undoing(db, doc, why)
    why = str(doc.get("why") or "")
    try:
        _roll_back(db, doc)
    except (OperationFailure, BackupError) as exc:
        detail = reason(exc) if isinstance(exc, OperationFailure) else exc.message
        raise BackupError(
            f"the swap in {db.name!r} could be neither finished ({why}) nor undone ({detail})",
            hint=f"inspect {JOURNAL} and the monarch_aside_* collections in {db.name!r}",
        ) from exc
    raise SwapUndone(why)


def _pairs(doc: dict[str, Any], key: str) -> list[tuple[str, str]]:
    # Pairs as subdocuments: FerretDB stores no nested arrays.
    return [(str(p["from"]), str(p["to"])) for p in doc.get(key, [])]


def _roll_forward(db: Database[Any], doc: dict[str, Any]) -> None:
    token, state = doc["token"], doc["state"]
    placing = _pairs(doc, "placing")
    views: list[dict[str, Any]] = [json_util.loads(v) for v in doc.get("views", [])]
    aside = _pairs(doc, "aside")
    present = names(db)
    if state == "aside":
        for view in doc.get("old_views", []):
            if view in present:
                db.drop_collection(view)
                present.pop(view)
        for name, moved in aside:
            if name in present:
                move(db, name, moved)  # gone from both: dropped meanwhile, nothing to keep
                present[moved] = present.pop(name)
        set_state(db, token, "placing")
        state = "placing"
    if state == "placing":
        for staging, final in placing:
            if staging in present:
                move(db, staging, final)
                present[final] = present.pop(staging)
            elif final not in present:
                raise BackupError(f"the staging collection {staging!r} for {final!r} vanished")
        for view in views:
            if view["create"] not in present:
                db.command(dict(view))
                present[str(view["create"])] = "view"
        set_state(db, token, "dropping")
    keep = {final for _, final in placing} | {str(v["create"]) for v in views}
    drop_all(db, [moved for _, moved in aside])
    if "scope" not in doc:  # a selective restore leaves names outside its scope alone
        drop_all(db, [n for n in names(db) if n not in keep and not is_operational(n)])
    db.drop_collection(JOURNAL)


def _start_undoing(db: Database[Any], doc: dict[str, Any], why: str) -> dict[str, Any]:
    """Record ``undoing`` and which final names to clear before moving the old ones back.

    While ``placing``, every final name present holds new data (placed, or half copied) or
    appeared during the swap; while ``aside``, none was placed yet.
    """
    placed: list[str] = []
    if doc["state"] == "placing":
        present = names(db)
        finals = [final for _, final in _pairs(doc, "placing")]
        finals += [str(json_util.loads(v)["create"]) for v in doc.get("views", [])]
        placed = [final for final in finals if final in present]
    record = {"state": "undoing", "placed": placed, "why": why}
    db[JOURNAL].update_one({"_id": LOCK_ID, "token": doc["token"]}, {"$set": record})
    return {**doc, **record}


def _roll_back(db: Database[Any], doc: dict[str, Any]) -> None:
    aside = dict(_pairs(doc, "aside"))
    present = names(db)
    for final in doc.get("placed", []):
        # A final name that was also an old one holds old data again once it has moved back.
        if final in present and (final not in aside or aside[final] in present):
            db.drop_collection(final)
    for name, moved in aside.items():
        if moved in present:
            move(db, moved, name)
    drop_staging(db, doc["token"], settle=False)
    present = names(db)
    for text in doc.get("old_view_defs", []):
        view = json_util.loads(text)
        if view["create"] not in present:
            db.command(dict(view))
    db.drop_collection(JOURNAL)


def set_state(db: Database[Any], token: str, state: str) -> None:
    """Record the swap's next state (see the journal's module docstring)."""
    db[JOURNAL].update_one({"_id": LOCK_ID, "token": token}, {"$set": {"state": state}})


def mine(name: str, token: str) -> bool:
    """Whether ``name`` is a staging or scratch collection of the restore with ``token``."""
    return name.startswith(f"{STAGING_PREFIX}{token}_") or probe_token(name) == token


def leftovers(db: Database[Any], keep_token: str | None) -> list[str]:
    """Staging and scratch collections of every restore but ``keep_token``'s."""
    found = []
    for name in names(db):
        token = (name[len(STAGING_PREFIX):].partition("_")[0]
                 if name.startswith(STAGING_PREFIX) else probe_token(name))
        if token is not None and token != keep_token:
            found.append(name)
    return found


def drop_staging(db: Database[Any], token: str, *, settle: bool) -> None:
    """Drop the staging and scratch collections of the restore with ``token``.

    ``settle`` when a command of that restore may still be running on the server: watch a
    moment for one to reappear, and drop it again.
    """
    drop_all(db, [n for n in names(db) if mine(n, token)])
    if not settle:
        return
    quiet_until = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < quiet_until:
        time.sleep(0.1)
        back = [n for n in names(db) if mine(n, token)]
        if back:  # a late insert or index build re-created it: drop it again, watch again
            drop_all(db, back)
            quiet_until = time.monotonic() + SETTLE_SECONDS
