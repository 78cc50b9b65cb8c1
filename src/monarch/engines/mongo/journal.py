"""The restore journal: one restore at a time per database, and a swap that survives a crash.

FerretDB has neither transactions nor ``renameCollection`` with ``dropTarget`` (nor any rename
of a name with a dot in it), so no server primitive swaps a whole database atomically. Instead a
restore keeps one document, ``{_id: "restore"}`` in ``monarch_restore_journal``, in the target
database. Collection names are stored in it as data (strings in subdocuments), never used as
namespaces of the journal itself, so no name can make the journal unreadable.

The state machine (each arrow is one journal write; a crash may stop anywhere)::

    (none) ──▶ loading ──▶ aside ──▶ placing ──▶ dropping ──▶ (none)
                  │           │          │
                  ▼           └────┬─────┘
               (none)              ▼
             rolled back        undoing ──▶ (none)

1. ``loading``: inserted before anything else (its unique ``_id`` makes it the lock). Scratch
   collections (``monarch_probe_<token>_*``) prove that every move the swap will need works for
   names of the shapes involved (:func:`monarch.engines.mongo._moves.probe`); data goes into
   ``monarch_staging_<token>_*``. A crash here is rolled BACK by the next run: the staging and
   scratch collections are dropped and the target was never touched.
2. ``aside``: written only once every collection has loaded, been counted and indexed. It
   records the whole plan (including the target's view definitions). The target's views are
   dropped; each of its collections is moved to ``monarch_aside_<token>_*``.
3. ``placing``: each staging collection is moved to its final name; views are created.
4. ``dropping``: the aside collections, and anything that appeared during the swap, are dropped;
   then the journal collection itself.
5. ``undoing``: entered from ``aside`` or ``placing`` only when the plan cannot be finished: a
   staging collection vanished, or the server refused a move (both ways, renamed and copied).
   It records which final names already hold new data; those are dropped, the aside collections
   move back to their names, staging is dropped, the old views are recreated, and the journal
   goes. The target then holds what it held before (time-series collections excepted: they
   cannot be moved aside, so they were dropped at the start of ``aside``).

From ``aside`` on, all data is verified, so a crash is rolled FORWARD: every step checks what is
already done, so running the plan again from its recorded state finishes it. A move is a rename,
or a copy where the server refuses to rename such a name (:func:`~monarch.engines.mongo._moves.
move`); a copy interrupted halfway starts over. ``recover`` (:func:`finish`) handles every state
above, including journals whose collections are gone (a missing collection that is no longer
needed is skipped; one that is needed turns the swap into ``undoing``).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bson import json_util

from monarch.engines.mongo._moves import (
    ASIDE_PREFIX,
    JOURNAL,
    OPERATIONAL,
    PROBE_PREFIX,
    STAGING_PREFIX,
    drop_all,
    is_operational,
    names,
    probe,
)
from monarch.engines.mongo._owner import (
    DRAIN_SECONDS,
    STALE_AFTER,
    Heartbeat,
    is_alive,
    owner_fields,
)
from monarch.engines.mongo._swap import (
    LOCK_ID,
    SETTLE_SECONDS,
    SWAP_STATES,
    SwapUndone,
    carry_out,
    drop_staging,
    finish,
    leftovers,
)
from monarch.engines.mongo.errors import translated
from monarch.errors import BackupError, MonarchError, RestoreBusy

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

    from monarch.engines.mongo import MongoEngine

__all__ = [
    "ASIDE_PREFIX",
    "JOURNAL",
    "OPERATIONAL",
    "PROBE_PREFIX",
    "SETTLE_SECONDS",
    "STAGING_PREFIX",
    "Journal",
    "SwapPlan",
    "derived_name",
    "finish",
    "is_operational",
    "name_fits",
    "unfinished_swap",
]

_HELD_HERE: set[str] = set()  # tokens of journals this process holds right now
_MAX_NAMESPACE_BYTES = 255  # MongoDB 4.4+: database, dot and collection, in UTF-8
_MAX_NAME_CHARS = 235  # FerretDB's own limit on collection names


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


def unfinished_swap(db: Database[Any]) -> dict[str, Any] | None:
    """The journal of a restore whose swap began and has not ended, if ``db`` has one.

    While it exists the database is in between: some collections may be set aside under
    ``monarch_aside_*`` names, others not yet in place.
    """
    doc: dict[str, Any] | None = db[JOURNAL].find_one({"_id": LOCK_ID,
                                                        "state": {"$in": list(SWAP_STATES)}})
    return doc


@dataclass(frozen=True)
class SwapPlan:
    """What the swap does: ``placing`` maps staging → final names; ``views`` are create
    commands run after the data is in place (views cannot be renamed, so they have no staging
    copy)."""

    placing: Sequence[tuple[str, str]]
    views: Sequence[dict[str, Any]] = field(default_factory=list)
    scope: frozenset[str] | None = None
    """The only names the swap may touch (a selective restore), or None: the whole database."""

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

        doc = {"_id": LOCK_ID, "state": "loading", **owner_fields(self.token, command)}
        with translated(self._engine.environment, "taking the restore journal"):
            for _ in range(3):
                try:
                    self._docs.insert_one(doc)
                except DuplicateKeyError:
                    existing = self._docs.find_one({"_id": LOCK_ID})
                    if existing is None:
                        continue
                    if is_alive(existing, _HELD_HERE):
                        raise _busy(self._engine.environment.name, existing) from None
                    self.recovered = self._finish(existing)
                    continue
                except BaseException:
                    # Stopped (Ctrl-C, SIGTERM) while the insert was on its way: it may still
                    # land, and only this process knows that the journal would be its own.
                    self._take_back()
                    raise
                self._held = True
                _HELD_HERE.add(self.token)
                try:
                    self._heartbeat = Heartbeat(self._docs, LOCK_ID, self.token)
                    self._drop_orphans()
                except BaseException:
                    with contextlib.suppress(MonarchError):
                        self.abandon()
                    raise
                return
        raise RestoreBusy(
            "another restore keeps taking the restore journal of environment "
            f"{self._engine.environment.name!r}; try again later"
        )

    def _take_back(self) -> None:
        """Remove this restore's journal document if it landed, watching a moment for a late
        insert; errors are left for the next run, which takes a dead journal over."""
        mine = {"_id": LOCK_ID, "token": self.token}
        with contextlib.suppress(Exception):
            self._docs.delete_one(mine)
            time.sleep(SETTLE_SECONDS)
            self._docs.delete_one(mine)
            _drop_journal_if_empty(self._db)

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
            self._docs.delete_one({"_id": LOCK_ID, "token": self.token})
            drop_staging(self._db, self.token, settle=settle)
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

        From here on the restore is finished (now or by the next run), unless it cannot be:
        then it is undone and :class:`SwapUndone` raised, the target as it was.
        """
        db_name = self._engine.environment.database
        try:
            with translated(self._engine.environment, "recording the swap in the journal"):
                present = {c["name"]: c for c in self._db.list_collections()}
                # Views and time-series collections cannot be renamed: they are dropped instead
                # (in the swap, so only once the backup is wholly loaded and verified).
                mine = {n: str(c.get("type", "collection")) for n, c in present.items()
                        if not is_operational(n) and (plan.scope is None or n in plan.scope)}
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
                    # To recreate them if the swap has to be undone.
                    "old_view_defs": [
                        json_util.dumps({"create": n, **present[n].get("options", {})})
                        for n in views if mine[n] == "view"
                    ],
                    "placing": [{"from": s, "to": f} for s, f in plan.placing],
                    # As text: a pipeline's "$" keys are not storable on every server.
                    "views": [json_util.dumps(v) for v in plan.views],
                }
                if plan.scope is not None:
                    # A selective restore: the roll forward must leave every other name alone.
                    record["scope"] = sorted(plan.scope)
                self._docs.update_one({"_id": LOCK_ID, "token": self.token}, {"$set": record})
                doc = self._docs.find_one({"_id": LOCK_ID, "token": self.token})
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
        try:
            self._stop_heartbeat()
            with translated(self._engine.environment, "swapping the restored collections in"):
                carry_out(self._db, doc)
        except SwapUndone as exc:
            raise SwapUndone(
                f"the swap into {db_name!r} could not be finished ({exc.message}); it was "
                "undone and the target holds what it held before",
                hint="run the restore again; if it fails the same way, report it with this "
                "message",
            ) from exc
        except MonarchError as exc:
            # The journal stays: say so, and how to finish (the error itself is the cause's).
            recover = f"run `monarch recover {self._engine.environment.name}` to finish the swap"
            exc.message = (f"{exc.message}; the swap stopped halfway and the target is in "
                           "between until it is finished")
            exc.args = (exc.message,)
            exc.hint = f"{exc.hint}; then {recover}" if exc.hint else recover
            raise
        except BaseException:
            # Ctrl-C or a stop signal inside the swap: all data is verified, so finishing the
            # swap is the cleanup (a second interrupt leaves it to `monarch recover`).
            self._finish_interrupted_swap()
            raise
        finally:
            # Finished or not, this journal is now for a later run to roll forward.
            self._release()
        return sorted(set(old) - plan.finals) + sorted(set(views) - plan.finals)

    def probe(self, placing: Iterable[tuple[str, str]],
              scope: frozenset[str] | None = None) -> None:
        """Prove, on scratch collections, that every move of the swap will work.

        ``placing`` pairs staging names with final names, as in :class:`SwapPlan`. The moves
        are these and the target's collections to their aside names, each tried on names of
        the same shape (see :mod:`monarch.engines.mongo._moves`); with ``scope``, only the
        target's collections of those names.
        Raises :class:`BackupError` naming a collection the server cannot move, target untouched.
        """
        db_name = self._engine.environment.database
        with translated(self._engine.environment, "checking that the swap will work"):
            present = names(self._db)
            old = [n for n, kind in present.items()
                   if kind == "collection" and not is_operational(n)
                   and (scope is None or n in scope)]
            moves = [(n, derived_name(ASIDE_PREFIX, self.token, n, db_name)) for n in old]
            moves += list(placing)
            probe(self._db, self.token, moves)

    def _finish_interrupted_swap(self) -> None:
        time.sleep(DRAIN_SECONDS)  # a command of ours may still be running on the server
        # A failure leaves the journal for `monarch recover`.
        with (contextlib.suppress(MonarchError),
              translated(self._engine.environment, "finishing the interrupted swap")):
            doc = self._docs.find_one({"_id": LOCK_ID, "token": self.token})
            if doc is not None:
                carry_out(self._db, doc)

    def _finish(self, existing: dict[str, Any]) -> str:
        env = self._engine.environment
        try:
            with translated(env, "finishing the interrupted restore found in its journal"):
                return finish(self._db, existing)
        except MonarchError as exc:
            if exc.hint is None:
                exc.hint = (f"run `monarch recover {env.name}` again once the cause is fixed; "
                            f"the journal is the collection {JOURNAL}")
            raise

    def _drop_orphans(self) -> None:
        # Staging and scratch collections whose journal is gone (a restore that died while
        # cleaning up, or a journal deleted by hand): holding the journal, no live restore can
        # own them.
        drop_all(self._db, leftovers(self._db, self.token))


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
