"""Moving a collection to another name in its database, and proving beforehand that it works.

A swap moves collections twice: the target's own ones aside, the staging ones to their final
names. ``renameCollection`` does that in one step on MongoDB, but a server may refuse it for some
names (FerretDB refuses every name that contains a dot, such as GridFS's ``fs.files``, on either
side of the rename). :func:`move` then copies instead: a new collection with the same options,
indexes and documents (raw BSON), and only once it is complete is the original dropped. Either
way a move interrupted at any point is finished by running it again.

:func:`probe` runs the very same moves on scratch collections whose names have the shape of the
real ones (same byte length, the same odd characters, dots above all), before the target is touched:
a name that can be neither renamed nor copied is refused up front. Scratch names are
``monarch_probe_<token>_<role>_...``; :func:`probe_token` reads the token back, so recovery
removes what an interrupted probe left.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS, RawBSONDocument

from monarch.engines.mongo.errors import first_line
from monarch.errors import BackupError
from monarch.history import EVENTS_NAME, LOCK_NAME

if TYPE_CHECKING:
    from pymongo.database import Database

JOURNAL = "monarch_restore_journal"
STAGING_PREFIX = "monarch_staging_"
ASIDE_PREFIX = "monarch_aside_"
PROBE_PREFIX = "monarch_probe_"
OPERATIONAL = frozenset({JOURNAL, LOCK_NAME, EVENTS_NAME})
"""monarch's own bookkeeping, which a backup leaves out and a restore neither replaces nor
removes: the restore journal, the environment's lock and its audit trail belong to the
environment, not to its data (the migration history, ``monarch_migrations``, is data: it is
restored like any collection)."""
INDEX_FIELDS_DROPPED = ("v", "ns", "background")
"""Index-spec fields that say nothing about the index itself (format version, namespace, how
to build it): dropped, since FerretDB refuses them. Everything else is passed to the server,
so an index it cannot build exactly is refused by name rather than built differently."""
_COPY_BATCH = 1000
_SCRATCH = re.compile(rf"^{PROBE_PREFIX}([0-9a-f]{{8}})_[a-z]_")


def is_operational(name: str) -> bool:
    """True for collections a restore must leave alone: monarch's and the server's own."""
    return (
        name in OPERATIONAL
        or name.startswith((STAGING_PREFIX, ASIDE_PREFIX, PROBE_PREFIX))
        or name.startswith("system.")
    )


def names(db: Database[Any]) -> dict[str, str]:
    """Every collection of ``db`` and its type (``collection``, ``view``, ...)."""
    return {c["name"]: str(c.get("type", "collection")) for c in db.list_collections()}


def move(db: Database[Any], old: str, new: str) -> str:
    """Give collection ``old`` the name ``new`` (replacing whatever ``new`` is); return how.

    ``"rename"`` or, where the server refuses to rename such a name, ``"copy"``. Idempotent:
    after an interruption, calling it again finishes the move (a copy starts over).
    """
    from pymongo.errors import InvalidName, OperationFailure

    present = names(db)
    if old not in present:
        if new in present:
            return "done"  # an earlier run (or a concurrent recovery) moved it
        raise BackupError(f"collection {old!r} in {db.name!r} is gone; it cannot be moved")
    if new in present:
        db.drop_collection(new)  # a partial copy, or a collection that appeared meanwhile
    try:
        db[old].rename(new)
        return "rename"
    except (OperationFailure, InvalidName):  # refused by the server, or by the driver
        now = names(db)
        if old not in now and new in now:
            return "done"  # a concurrent recovery did this very step
    _copy(db, old, new)
    return "copy"


def _copy(db: Database[Any], old: str, new: str) -> None:
    source = db.get_collection(old, codec_options=DEFAULT_RAW_BSON_OPTIONS)
    options = {k: v for k, v in source.options().items() if k != "autoIndexId"}
    db.command({"create": new, **options})
    for index in db[old].list_indexes():
        if index.get("name") == "_id_":
            continue
        spec = {k: v for k, v in index.items() if k not in INDEX_FIELDS_DROPPED}
        db.command("createIndexes", new, indexes=[spec])  # one per command, as for staging
    target = db.get_collection(new, codec_options=DEFAULT_RAW_BSON_OPTIONS)
    batch: list[RawBSONDocument] = []
    # insert_many raises on any document the server refuses, so a copy that returns is whole.
    for document in source.find(batch_size=_COPY_BATCH):
        batch.append(document)
        if len(batch) >= _COPY_BATCH:
            target.insert_many(batch, ordered=False, bypass_document_validation=True)
            batch = []
    if batch:
        target.insert_many(batch, ordered=False, bypass_document_validation=True)
    db.drop_collection(old)  # only now: until here, running the move again starts over


def scratch_name(token: str, role: str, name: str) -> str:
    """A scratch name with the shape of ``name``: as many UTF-8 bytes, a dot if it has one.

    Shorter names than the scratch prefix get the whole name after the prefix: far below every
    length limit, their length does not matter.
    """
    prefix = f"{PROBE_PREFIX}{token}_{role}_"
    room = len(name.encode()) - len(prefix)
    if room < 2:
        return prefix + name
    tail = ""
    for char in reversed(name):
        if len((char + tail).encode()) > room:
            break
        tail = char + tail
    if "." in name and "." not in tail:
        tail = "." + tail[1:]
    return prefix + "x" * (room - len(tail.encode())) + tail


def probe_token(name: str) -> str | None:
    """The restore token of a scratch collection made by :func:`probe`, else None."""
    match = _SCRATCH.match(name)
    return match.group(1) if match else None


def probe(db: Database[Any], token: str, moves: Iterable[tuple[str, str]]) -> None:
    """Run each kind of move of ``moves`` on scratch names of the same shape, then drop them.

    Raises :class:`BackupError` naming the first collection whose move the server refuses both
    ways (renamed and copied). Cleans up after itself even when interrupted; what a killed
    process leaves is removed with the restore's staging collections.
    """
    from pymongo.errors import InvalidName, OperationFailure

    tried: set[tuple[Any, ...]] = set()
    for old, new in moves:
        shape = (_shape(old), _shape(new))
        if shape in tried:
            continue
        tried.add(shape)
        source, target = scratch_name(token, "s", old), scratch_name(token, "t", new)
        made: list[str] = [source, target]
        try:
            db.command({"create": source})
            db[source].insert_one({"_id": 1})
            db.command("createIndexes", source, indexes=[{"key": {"probe": 1}, "name": "probe"}])
            move(db, source, target)
            db.drop_collection(target)
        except (OperationFailure, InvalidName) as exc:
            raise BackupError(
                f"the server refuses to move collection {old!r} to {new!r} (renamed or "
                "copied), as the swap would have to; tried on scratch collections of the same "
                f"name shape: {reason(exc)}; nothing was done",
                hint="restore into a server that accepts such collection names, or rename the "
                "collection in the source",
            ) from exc
        finally:
            with contextlib.suppress(Exception):  # unreachable: the journal's cleanup drops them
                drop_all(db, made)


def drop_all(db: Database[Any], collections: Iterable[str]) -> None:
    """Drop each of ``collections`` (already gone is fine)."""
    for name in collections:
        db.drop_collection(name)


def _shape(name: str) -> tuple[frozenset[str], int]:
    """What a server's naming rules might care about: the characters other than letters,
    digits and ``_`` (a dot above all), and the length once it is long."""
    size = len(name.encode())
    return frozenset(c for c in name if not (c.isascii() and c.isalnum()) and c != "_"), (
        size if size > 64 else 0)


def reason(exc: Exception) -> str:
    """The server's one-line reason for refusing a command."""
    details: dict[str, Any] = getattr(exc, "details", None) or {}
    return first_line(str(details.get("errmsg") or exc))

