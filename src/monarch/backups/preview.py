"""``restore --dry-run``: what a restore would replace, add and remove, changing nothing.

The backup's side comes from its manifest (each collection's documents, each table's rows as
the dump recorded them); a mongodump archive, folder or 0.0.x zip has none, so it is read
through once (every check of a restore applies) and its end-of-collection counts are used.
The target's side is counted on the server now (:meth:`~monarch.engines.base.Engine.inventory`).
The selection, renames and refusals are the restore's own (:mod:`monarch.engines.selection`),
so a dry run that succeeds is a restore that would not be refused for its names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from monarch.archive.events import CollectionEnd
from monarch.backups.sources import open_source
from monarch.engines import registry
from monarch.engines.selection import WHOLE, split_qualified
from monarch.io import Readable

if TYPE_CHECKING:
    from monarch.backups.keys import BackupKeys
    from monarch.backups.sources import Source
    from monarch.engines.base import Engine
    from monarch.engines.selection import Selection
    from monarch.stores.base import Store

REPLACE = "replace"
ADD = "add"
REMOVE = "remove"


@dataclass(frozen=True)
class Change:
    """One collection (table) the restore would change.

    ``action``: ``"replace"`` (the target has it; the backup's takes its place), ``"add"``
    (the target lacks it) or ``"remove"`` (the target has it, the backup does not, and the
    restore is whole). ``name`` is the target's name, ``source`` the backup's (they differ
    when renamed). ``before``: the target's count now (None: absent); ``after``: the backup's
    (None: removed).
    """

    name: str
    source: str
    action: str
    before: int | None
    after: int | None


@dataclass(frozen=True)
class RestorePreview:
    """What ``restore`` would do; nothing was changed. ``untouched``: the target's
    collections (tables) outside a partial selection, left as they are."""

    backup: str
    environment: str
    database: str
    noun: str
    changes: tuple[Change, ...]
    untouched: tuple[str, ...]
    selection: str | None
    counted_from: str
    """Where the backup's counts come from: ``"manifest"`` or ``"dump"`` (read through)."""
    other_database: bool = False
    """True when the target is another database of the environment's server (``--database``)
    than its own."""


def preview(
    store: Store,
    engine: Engine,
    backup_name: str,
    *,
    from_db: str | None = None,
    selection: Selection | None = None,
    ceiling: tuple[str | int | None, str] = (None, "--max-size"),
    keys: BackupKeys | None = None,
) -> RestorePreview:
    """Say what ``restore`` with these arguments would do to ``engine``'s database.

    Refuses (UsageError) what the restore would refuse for its names: a pattern that matches
    nothing, a rename onto an existing name without ``replace_existing``. Writes nothing.
    ``keys`` open an encrypted backup's manifest, as for a restore.
    """
    selection = selection or WHOLE
    qualified = engine.capabilities.schemas
    env = engine.environment
    with open_source(store, backup_name, engine, from_db, ceiling, keys=keys) as source:
        counts, counted_from = _backup_counts(source)
    noun = registry.noun_of(env.engine)
    where = f"the backup {backup_name!r}"
    selection.require_matches(counts, noun, where, qualified=qualified)
    chosen = {name: n for name, n in counts.items() if _selects(selection, name, qualified)}
    finals = {name: (selection.qualified_target(name) if qualified
                     else selection.target_name(name, source.database)) for name in chosen}
    present = engine.inventory()
    selection.refuse_overwrite(finals, present, f"environment {env.name!r}", noun)
    changes = [
        Change(final, name, REPLACE if final in present else ADD, present.get(final),
               chosen[name])
        for name, final in sorted(finals.items(), key=lambda kv: kv[1])
    ]
    kept = set(finals.values())
    untouched: tuple[str, ...] = ()
    if selection.partial:
        untouched = tuple(sorted(n for n in present if n not in kept))
    else:
        changes += [Change(n, n, REMOVE, count, None)
                    for n, count in sorted(present.items()) if n not in kept]
    return RestorePreview(
        backup=backup_name,
        environment=env.name,
        database=env.database,
        noun=noun,
        changes=tuple(changes),
        untouched=untouched,
        selection=selection.describe() if selection.partial else None,
        counted_from=counted_from,
    )


def _selects(selection: Selection, name: str, qualified: bool) -> bool:
    if qualified:
        schema, table = split_qualified(name)
        return selection.selects(table, schema)
    return selection.selects(name)


def _backup_counts(source: Source) -> tuple[dict[str, int], str]:
    """Each collection's (table's) count in the backup, and where it was read."""
    if source.manifest is not None:
        return {c.name: c.documents for c in source.manifest.collections}, "manifest"
    reader = source.input
    if isinstance(reader, Readable):  # a stream without a manifest: nothing to count by
        return {}, "dump"
    counts = {m.collection: 0 for m in reader.collections
              if m.db == source.database and not m.collection.startswith("system.")}
    for event in reader:
        if isinstance(event, CollectionEnd) and event.db == source.database \
                and event.collection in counts:
            counts[event.collection] = event.documents
    return counts, "dump"
