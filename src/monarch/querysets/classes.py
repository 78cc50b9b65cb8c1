"""Class-based query sets: the kind the original monarch 0.0.x wrote, still supported.

``monarch generate_query_set`` of the original wrote ``querysets/<name>_queryset.py``::

    from click import prompt
    from monarch import QuerySet

    class ActiveUsersQuerySet(QuerySet):
        def run(self):
            self.dump_collection("users", {"active": True})

        def exclude(self):
            return ["audit_log"]

monarch runs ``run()`` against the source database (``self.database``, a pymongo Database)
before anything is dumped and records each ``dump_collection(name, query)`` call. The result is
the same plan a module query set gives (:class:`monarch.backups.querysets.QuerySet`): each
collection passed to ``dump_collection`` is read through its filter; every other collection in
``only()`` (default: all but ``system.*``) and not in ``exclude()`` is dumped whole; the rest is
left out. Because nothing is written while ``run()`` runs, a ``run()`` that fails leaves nothing
behind. This module imports no driver: ``from monarch import QuerySet`` stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from monarch.errors import MonarchError, QuerySetError

if TYPE_CHECKING:
    from pymongo.database import Database

SUFFIX = "_queryset"
"""How the original named query set files: ``<name>_queryset.py``."""

_CLASS_RE = re.compile(r"^class\s+([A-Za-z_]\w*)\s*\(([^)]*)\)", re.MULTILINE)


class QuerySet:
    """Base class of class-based query sets (``from monarch import QuerySet``).

    Subclass it and define ``run()``, which calls :meth:`dump_collection` for the collections
    it narrows; override :meth:`only` and :meth:`exclude` to choose what else is dumped.
    ``self.database`` is the source's pymongo Database, for queries that decide what to dump.
    """

    def __init__(self, database: Database[Any]) -> None:
        self.database = database
        self._dumps: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        """Call :meth:`dump_collection` for each collection to dump through a filter."""

    def dump_collection(self, name: str, query: Mapping[str, Any] | None = None) -> None:
        """Dump collection ``name``, only the documents matching ``query`` (a find() filter)."""
        if not isinstance(name, str) or not name:
            raise QuerySetError(
                f"{type(self).__name__}.dump_collection: the collection name must be a "
                f"non-empty string, not {name!r}"
            )
        if query is not None and not isinstance(query, Mapping):
            raise QuerySetError(
                f"{type(self).__name__}.dump_collection({name!r}): the query must be a dict "
                f"(a find() filter), not {type(query).__name__}"
            )
        if name in self._dumps:
            # The original ran mongodump twice and kept whichever file was written last.
            raise QuerySetError(
                f"{type(self).__name__} dumps collection {name!r} twice",
                hint="combine the two filters into one, e.g. with $or",
            )
        self._dumps[name] = dict(query or {})

    def only(self) -> list[str] | None:
        """The collections dumped at all (None: every collection but ``system.*``)."""
        return None

    def exclude(self) -> list[str]:
        """Collections never dumped whole (``dump_collection`` still dumps them)."""
        return []


@dataclass(frozen=True)
class ClassPlan:
    """What a class-based query set's ``run()`` chose: filtered and whole collections."""

    name: str
    filters: Mapping[str, Mapping[str, Any]]
    whole: tuple[str, ...]


def query_set_classes(definitions: Mapping[str, Any], module: str) -> list[type[QuerySet]]:
    """The QuerySet subclasses among a loaded file's globals (those it defines, if any)."""
    found = [
        value for value in definitions.values()
        if isinstance(value, type) and issubclass(value, QuerySet) and value is not QuerySet
    ]
    own = [cls for cls in found if cls.__module__ == module]
    return own or found


def run_class(cls: type[QuerySet], database: Database[Any], path: Path) -> ClassPlan:
    """Run ``cls().run()`` against ``database`` and return the collections it chose.

    Raises QuerySetError, naming ``path`` and the class, if ``run()``, ``only()`` or
    ``exclude()`` fails or returns something else than collection names.
    """
    where = f"{path}: {cls.__name__}"
    try:
        instance = cls(database)
        instance.run()
        only = instance.only()
        exclude = instance.exclude()
        existing = database.list_collection_names()
    except (MonarchError, click.Abort):
        raise
    except Exception as exc:
        raise QuerySetError(
            f"{where} failed: {type(exc).__name__}: {exc}; nothing was dumped",
            hint=f"fix {cls.__name__}.run() (or only()/exclude()) in {path}",
        ) from exc
    wanted = sorted(n for n in existing if not n.startswith("system.")) if only is None else (
        [n for n in _names(only, f"{where}.only()") if n in existing]
    )
    excluded = set(_names(exclude, f"{where}.exclude()"))
    dumps: dict[str, dict[str, Any]] = getattr(instance, "_dumps", {})
    whole = tuple(n for n in wanted if n not in excluded and n not in dumps)
    return ClassPlan(cls.__name__, dict(dumps), whole)


def _names(value: object, where: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise QuerySetError(f"{where} must return a list of collection names, not {value!r}")
    names = list(value)
    if not all(isinstance(n, str) and n for n in names):
        raise QuerySetError(f"{where} must return collection names (strings), got {names!r}")
    return names


def declared_classes(path: Path) -> list[str]:
    """Names of the classes ``path`` declares on a QuerySet base, read without running it."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [m[1] for m in _CLASS_RE.finditer(text) if re.search(r"\bQuerySet\b", m[2])]


def find_by_name(folder: Path, name: str) -> tuple[Path, str | None] | None:
    """The class-based file that ``name`` selects, and the class if named by class.

    ``name`` is a class name (``ActiveUsersQuerySet``) or the file's name without its
    ``_queryset`` suffix (``active_users``); None if no file in ``folder`` matches.
    """
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(f"*{SUFFIX}.py")):
        if path.stem[: -len(SUFFIX)] == name:
            return path, None
        if name in declared_classes(path):
            return path, name
    return None
