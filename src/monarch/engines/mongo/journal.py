"""The restore journal: one restore at a time per database, and a swap that survives a crash.

FerretDB has neither transactions nor ``renameCollection`` with ``dropTarget``, so no server
primitive swaps a whole database atomically. Instead a restore keeps one document,
``{_id: "restore"}`` in ``monarch_restore_journal``, in the target database:

1. ``loading``: inserted before anything else (its unique ``_id`` makes it the lock). Data goes
   into ``monarch_staging_<token>_*`` collections. A crash here is rolled BACK by the next run:
   the staging collections are dropped and the target was never touched.
2. ``aside``: written only once every collection has loaded, been counted and indexed. It
   records the whole plan. Each existing collection is renamed to ``monarch_aside_<token>_*``.
3. ``placing``: each staging collection is renamed to its final name; views are created.
4. ``dropping``: the aside collections, and anything that appeared during the swap, are dropped;
   then the journal collection itself.

From ``aside`` on, all data is verified, so a crash is rolled FORWARD: every step checks what
is already done, so running the plan again from its recorded state finishes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bson import json_util

from monarch.engines.mongo._owner import (
    STALE_AFTER,
    Heartbeat,
    is_alive,
    owner_fields,
    recently_alive,
    wait_for_drain,
)
from monarch.engines.mongo.errors import translated
from monarch.errors import BackupError, MonarchError, RestoreBusy

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

    from monarch.engines.mongo import MongoEngine

JOURNAL = "monarch_restore_journal"
STAGING_PREFIX = "monarch_staging_"
ASIDE_PREFIX = "monarch_aside_"
PROBE_PREFIX = "monarch_probe_"
OPERATIONAL = frozenset({JOURNAL, "monarch_lock"})
"""monarch's own bookkeeping, which a restore neither replaces nor removes (the migration
history, ``monarch_migrations``, is data: it is restored like any collection)."""

SETTLE_SECONDS = 1.0
"""After dropping staging that a command still running on the server may re-create, watch this
long for it to reappear (see :data:`monarch.engines.mongo._owner.DRAIN_SECONDS`)."""
_LOCK_ID = "restore"
_HELD_HERE: set[str] = set()  # tokens of journals this process holds right now
_MAX_NAMESPACE_BYTES = 255  # MongoDB 4.4+: database, dot and collection, in UTF-8
_MAX_NAME_CHARS = 235  # FerretDB's own limit on collection names


def is_operational(name: str) -> bool:
    """True for collections a restore must leave alone: monarch's and the server's own."""
    return (
        name in OPERATIONAL
        or name.startswith((STAGING_PREFIX, ASIDE_PREFIX, PROBE_PREFIX))
        or name.startswith("system.")
    )


def name_fits(db: str, name: str) -> bool:
    """Whether ``db.name`` is within the namespace limits of MongoDB and FerretDB."""
    size = len(db.encode()) + 1 + len(name.encode())
    return size <= _MAX_NAMESPACE_BYTES and len(name) <= _MAX_NAME_CHARS


def derived_name(prefix: str, token: str, name: str, db: str) -> str:
    """``<prefix><token>_<name>``, or with a hash of ``name`` when that would be too long."""
    candidate = f"{prefix}{token}_{name}"
    if name_fits(db, candidate):
        return candidate
    return f"{prefix}{token}_{hashlib.sha256(name.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class SwapPlan:
    """What the swap does: ``placing`` maps staging → final names; ``views`` are create
    commands run after the data is in place (views cannot be renamed, so they have no staging
    copy)."""

    placing: Sequence[tuple[str, str]]
    views: Sequence[dict[str, Any]] = field(default_factory=list)

    @property
    def finals(self) -> set[str]:
        """Every name the target holds afterwards (besides monarch's own)."""
        return {final for _, final in self.placing} | {str(v["create"]) for v in self.views}


class Journal:
    """The journal of one target database. ``acquire()`` first; see the module docstring."""

    def __init__(self, engine: MongoEngine) -> None:
        self._engine = engine
        self.token = secrets.token_hex(4)
        self._held = False
        self._heartbeat: Heartbeat | None = None
        self.recovered: str | None = None
        """What :meth:`acquire` found and finished or cleaned up, for the user to read."""

    @property
    def _db(self) -> Database[Any]:
        return self._engine.db

    @property
    def _docs(self) -> Collection[Any]:
        return self._db[JOURNAL]

    def staging_name(self, name: str) -> str:
        return derived_name(STAGING_PREFIX, self.token, name, self._engine.environment.database)

    def acquire(self, command: str) -> None:
        """Take the journal (the lock), first finishing or cleaning up an abandoned restore.

        Raises :class:`RestoreBusy` if another restore into this database is alive.
        """
        from pymongo.errors import DuplicateKeyError

        doc = {"_id": _LOCK_ID, "state": "loading", **owner_fields(self.token, command)}
        with translated(self._engine.environment, "taking the restore journal"):
            for _ in range(3):
                try:
                    self._docs.insert_one(doc)
                except DuplicateKeyError:
                    existing = self._docs.find_one({"_id": _LOCK_ID})
                    if existing is None:
                        continue
                    if is_alive(existing, _HELD_HERE):
                        raise _busy(self._engine.environment.name, existing) from None
                    self.recovered = finish(self._db, existing)
                    continue
                self._held = True
                _HELD_HERE.add(self.token)
                self._heartbeat = Heartbeat(self._docs, _LOCK_ID, self.token)
                self._drop_orphans()
                return
        raise RestoreBusy(
            "another restore keeps taking the restore journal of environment "
            f"{self._engine.environment.name!r}; try again later"
        )

    def abandon(self, *, settle: bool = False) -> None:
        """Before the swap: drop this restore's staging collections and release the journal.

        ``settle`` when a command of ours may still be running on the server (the wait for
        its reply was interrupted): staging it re-creates is then dropped too.
        """
        if not self._held:
            return
        self._stop_heartbeat()
        with translated(self._engine.environment, "cleaning up staging collections"):
            # The journal goes first: staging without a journal is dropped by any later run,
            # whereas a journal whose staging is half gone could not be rolled forward.
            self._docs.delete_one({"_id": _LOCK_ID, "token": self.token})
            _drop_staging(self._db, self.token, settle=settle)
            _drop_journal_if_empty(self._db)
        self._release()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def _release(self) -> None:
        self._stop_heartbeat()
        self._held = False
        _HELD_HERE.discard(self.token)

    def swap(self, plan: SwapPlan) -> list[str]:
        """Record ``plan`` and carry it out; return the target collections that were dropped.

        From here on the restore cannot be undone, only finished (now or by the next run).
        """
        db_name = self._engine.environment.database
        try:
            with translated(self._engine.environment, "recording the swap in the journal"):
                names = _names(self._db)
                # Views and time-series collections cannot be renamed: they are dropped instead
                # (in the swap, so only once the backup is wholly loaded and verified).
                mine = {n: k for n, k in names.items() if not is_operational(n)}
                old = sorted(n for n, k in mine.items() if k == "collection")
                views = sorted(n for n, k in mine.items() if k != "collection")
                aside = [
                    {"from": n, "to": derived_name(ASIDE_PREFIX, self.token, n, db_name)}
                    for n in old
                ]
                # Pairs as subdocuments: FerretDB stores no nested arrays.
                record = {
                    "state": "aside",
                    "aside": aside,
                    "old_views": views,
                    "placing": [{"from": s, "to": f} for s, f in plan.placing],
                    # As text: a pipeline's "$" keys are not storable on every server.
                    "views": [json_util.dumps(v) for v in plan.views],
                }
                self._docs.update_one({"_id": _LOCK_ID, "token": self.token}, {"$set": record})
                doc = self._docs.find_one({"_id": _LOCK_ID, "token": self.token})
            if doc is None or doc.get("state") != "aside":
                raise BackupError(
                    "the restore journal was changed by someone else before the "
                    "swap; nothing was swapped",
                    hint="run the restore again",
                )
        except BaseException:
            with contextlib.suppress(MonarchError):
                self.abandon()
            raise
        self._stop_heartbeat()
        try:
            _roll_forward(self._db, doc)
        finally:
            # Finished or not, this journal is now for a later run to roll forward.
            self._release()
        return sorted(set(old) - plan.finals) + sorted(set(views) - plan.finals)

    def _drop_orphans(self) -> None:
        # Staging collections whose journal is gone (a restore that died while cleaning up,
        # or a journal deleted by hand): holding the journal, no live restore can own them.
        orphans = [
            n
            for n in _with_prefix(self._db, STAGING_PREFIX)
            if not n.startswith(f"{STAGING_PREFIX}{self.token}_")
        ]
        _drop_all(self._db, orphans)


def finish(db: Database[Any], doc: dict[str, Any]) -> str:
    """Bring an abandoned journal to its end: roll back ``loading``, roll forward the rest.

    Returns a sentence saying what was done. Every step is idempotent, so a crash inside this
    function is finished by the next call.
    """
    state, token = doc.get("state"), str(doc.get("token"))
    started = doc.get("started")
    when = f" started {started:%Y-%m-%d %H:%M:%S} UTC" if isinstance(started, datetime) else ""
    who = f"a restore{when} (pid {doc.get('pid')} on {doc.get('host')})"
    if state == "loading":
        db[JOURNAL].delete_one({"_id": _LOCK_ID, "token": token})
        _drop_staging(db, token, settle=recently_alive(doc))
        return f"{who} was interrupted before its swap; its staging collections were removed"
    if state not in ("aside", "placing", "dropping"):
        raise BackupError(
            f"the restore journal in {db.name!r} has an unknown state {state!r}",
            hint=f"inspect {JOURNAL} and remove it by hand",
        )
    wait_for_drain(doc)  # a late rename of the dead restore must not land after ours
    _roll_forward(db, doc)
    return f"{who} was interrupted during its swap; the swap was finished"


def _roll_forward(db: Database[Any], doc: dict[str, Any]) -> None:
    token, state = doc["token"], doc["state"]
    placing = [(str(p["from"]), str(p["to"])) for p in doc.get("placing", [])]
    views: list[dict[str, Any]] = [json_util.loads(v) for v in doc.get("views", [])]
    aside = [(str(p["from"]), str(p["to"])) for p in doc.get("aside", [])]
    names = _names(db)
    if state == "aside":
        for view in doc.get("old_views", []):
            if view in names:
                db.drop_collection(view)
                names.pop(view)
        for name, moved in aside:
            if name in names and moved not in names:
                _rename(db, name, moved)
                names[moved] = names.pop(name)
        _set_state(db, token, "placing")
        state = "placing"
    if state == "placing":
        for staging, final in placing:
            if staging in names:
                if final in names:  # appeared during the swap: the restore replaces it
                    db.drop_collection(final)
                _rename(db, staging, final)
                names[final] = names.pop(staging)
            elif final not in names:
                raise BackupError(
                    f"the staging collection {staging!r} for {final!r} vanished during the swap",
                    hint=f"inspect {JOURNAL} in {db.name!r}",
                )
        for view in views:
            if view["create"] not in names:
                db.command(dict(view))
                names[str(view["create"])] = "view"
        _set_state(db, token, "dropping")
    keep = {final for _, final in placing} | {str(v["create"]) for v in views}
    _drop_all(db, [moved for _, moved in aside])
    _drop_all(db, [n for n in _names(db) if n not in keep and not is_operational(n)])
    db.drop_collection(JOURNAL)


def _rename(db: Database[Any], old: str, new: str) -> None:
    from pymongo.errors import OperationFailure

    try:
        db[old].rename(new)
    except OperationFailure:
        names = _names(db)
        if old in names or new not in names:
            raise
        # Someone else (a concurrent recovery) did this step.


def _set_state(db: Database[Any], token: str, state: str) -> None:
    db[JOURNAL].update_one({"_id": _LOCK_ID, "token": token}, {"$set": {"state": state}})


def _names(db: Database[Any]) -> dict[str, str]:
    return {c["name"]: str(c.get("type", "collection")) for c in db.list_collections()}


def _with_prefix(db: Database[Any], prefix: str) -> list[str]:
    return [n for n in _names(db) if n.startswith(prefix)]


def _drop_all(db: Database[Any], names: Iterable[str]) -> None:
    for name in names:
        db.drop_collection(name)


def _drop_staging(db: Database[Any], token: str, *, settle: bool) -> None:
    prefix = f"{STAGING_PREFIX}{token}_"
    _drop_all(db, _with_prefix(db, prefix))
    if not settle:
        return
    quiet_until = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < quiet_until:
        time.sleep(0.1)
        back = _with_prefix(db, prefix)
        if back:  # a late insert or index build re-created it: drop it again, watch again
            _drop_all(db, back)
            quiet_until = time.monotonic() + SETTLE_SECONDS


def _drop_journal_if_empty(db: Database[Any]) -> None:
    # The journal collection is not the backup's: leave the database as the restore found it.
    if db[JOURNAL].find_one() is None:
        db.drop_collection(JOURNAL)


def _busy(env: str, doc: dict[str, Any]) -> RestoreBusy:
    return RestoreBusy(
        f"another restore into environment {env!r} is running: {doc.get('command', '?')} "
        f"(pid {doc.get('pid')} on {doc.get('host')}, state {doc.get('state')}); nothing was "
        "done",
        hint="wait for it to finish; a restore that died is taken over at once on its own "
        f"host, and {int(STALE_AFTER)} s after its last sign of life from elsewhere",
    )
