"""What a loaded query set says: which collections a dump reads, and how.

Engines read this (a MongoDB dump applies it); :mod:`monarch.querysets.files` builds it from a
project's ``querysets/`` files.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monarch.errors import QuerySetError

Transform = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class CollectionQuery:
    """How one collection is read: a find() with an optional per-document transform."""

    filter: Mapping[str, Any] = field(default_factory=dict)
    projection: Mapping[str, Any] | None = None
    sort: tuple[tuple[str, int], ...] | None = None
    limit: int = 0
    """At most this many documents; 0 means no limit."""
    transform: Transform | None = None

    @property
    def narrows(self) -> bool:
        """Whether this reads less (or other) than the whole collection as it is."""
        return bool(self.filter or self.projection or self.limit or self.transform)


WHOLE = CollectionQuery()


@dataclass(frozen=True)
class QueryPlan:
    """A loaded query set: what a dump reads, and how. Built by
    :func:`~monarch.querysets.files.load_query_set` or
    :func:`~monarch.querysets.files.query_set_from`."""

    name: str
    collections: Mapping[str, CollectionQuery] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    include_others: bool = True
    path: Path | None = None

    def selects(self, collection: str) -> bool:
        """Whether ``collection`` is dumped at all."""
        if any(fnmatch.fnmatchcase(collection, pattern) for pattern in self.exclude):
            return False
        return self.include_others or collection in self.collections

    def query(self, collection: str) -> CollectionQuery:
        """How to read ``collection`` (the whole of it unless ``COLLECTIONS`` says otherwise)."""
        return self.collections.get(collection, WHOLE)

    def check_against(self, existing: Iterable[str]) -> None:
        """Raise QuerySetError if ``COLLECTIONS`` names a collection not in ``existing``."""
        have = set(existing)
        missing = sorted(name for name in self.collections if name not in have)
        if missing:
            where = self.path or f"query set {self.name!r}"
            raise QuerySetError(
                f"{where} names collection(s) the database does not have: "
                + ", ".join(missing),
                hint="fix the name (a misspelt collection would be dumped without its filter "
                "or transform), or remove the entry",
            )
