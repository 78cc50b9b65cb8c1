"""Query sets: Python files that narrow and transform what a backup or copy_db dumps.

A query set is ``querysets/<name>.py`` in the project. It may define::

    COLLECTIONS = {
        "users": {
            "filter": {"active": True},        # only these documents (a find() filter)
            "projection": {"password": 0},     # only these fields (a find() projection)
            "sort": [("created", -1)],         # in this order (matters with a limit)
            "limit": 1000,                     # at most this many documents
            "transform": scrub_user,           # fn(dict) -> dict, or None to leave it out
        },
    }
    EXCLUDE = ["logs", "audit_*"]              # collections left out (shell-style patterns)
    INCLUDE_OTHERS = True                      # False: dump only the collections named above

Every key is optional. Collections named in neither ``COLLECTIONS`` nor ``EXCLUDE`` are dumped
whole unless ``INCLUDE_OTHERS`` is False. A name in ``COLLECTIONS`` that the database lacks is an
error: a typo must not let unscrubbed data through. Documents pass through raw, except in
collections with a ``transform``, which alone are decoded into dicts (and re-encoded).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from monarch.errors import QuerySetError, UsageError

if TYPE_CHECKING:
    from monarch.config import Config

Transform = Callable[[dict[str, Any]], dict[str, Any] | None]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_QUERY_KEYS = frozenset({"filter", "projection", "sort", "limit", "transform"})
_MODULE_KEYS = ("COLLECTIONS", "EXCLUDE", "INCLUDE_OTHERS")


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


_WHOLE = CollectionQuery()


@dataclass(frozen=True)
class QuerySet:
    """A loaded query set. Build one with :func:`load_query_set` or :func:`query_set_from`."""

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
        return self.collections.get(collection, _WHOLE)

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


def check_query_set_name(name: str) -> str:
    """Return ``name`` if it can name a query set file, else raise UsageError."""
    if not _NAME_RE.match(name):
        raise UsageError(
            f"invalid query set name {name!r}",
            hint="use letters, digits, '_' and '-', e.g. anonymized",
        )
    return name


def query_set_path(config: Config, name: str) -> Path:
    """Where the query set ``name`` lives: ``<querysets>/<name>.py``."""
    return config.querysets_dir / f"{check_query_set_name(name)}.py"


def load_query_set(config: Config, name: str) -> QuerySet:
    """Load ``querysets/<name>.py`` (running it, as any Python file) and check its shape.

    Raises :class:`~monarch.errors.QuerySetError` if it is missing, fails to run, or defines
    something malformed; the message names the file and what is wrong.
    """
    path = query_set_path(config, name)
    if not path.is_file():
        known = sorted(p.stem for p in config.querysets_dir.glob("*.py")) if (
            config.querysets_dir.is_dir()
        ) else []
        raise QuerySetError(
            f"no query set {name!r}: {path} does not exist"
            + (f" (known: {', '.join(known)})" if known else ""),
            hint=f"create it with `monarch generate_query_set {name}`",
        )
    module_name = f"monarch_querysets.{name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise QuerySetError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs so that dataclasses and pickling inside the file work.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise QuerySetError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        raise QuerySetError(
            f"{path} failed to load: {type(exc).__name__}: {exc}",
            hint="run `python " + str(path) + "` to see the full traceback",
        ) from exc
    finally:
        sys.modules.pop(module_name, None)
    return query_set_from(name, vars(module), path=path)


def query_set_from(
    name: str, definitions: Mapping[str, Any], *, path: Path | None = None
) -> QuerySet:
    """Build a QuerySet from a mapping shaped like a query set file's globals."""
    where = str(path) if path else f"query set {name!r}"
    _check_spelling(definitions, where)
    raw = definitions.get("COLLECTIONS", {})
    if not isinstance(raw, Mapping):
        raise QuerySetError(f"{where}: COLLECTIONS must be a dict of collection name -> query")
    collections = {
        _collection_name(key, where): _collection_query(key, value, where)
        for key, value in raw.items()
    }
    exclude = definitions.get("EXCLUDE", ())
    if isinstance(exclude, str) or not isinstance(exclude, Sequence | set | frozenset):
        raise QuerySetError(f"{where}: EXCLUDE must be a list of collection names or patterns")
    patterns = tuple(_collection_name(p, where) for p in exclude)
    clash = sorted(
        c for c in collections if any(fnmatch.fnmatchcase(c, p) for p in patterns)
    )
    if clash:
        raise QuerySetError(
            f"{where}: {', '.join(clash)} both excluded and given a query; pick one"
        )
    include_others = definitions.get("INCLUDE_OTHERS", True)
    if not isinstance(include_others, bool):
        raise QuerySetError(f"{where}: INCLUDE_OTHERS must be True or False")
    return QuerySet(name, MappingProxyType(collections), patterns, include_others, path)


def _check_spelling(definitions: Mapping[str, Any], where: str) -> None:
    # EXCLUDED = [...] instead of EXCLUDE would silently dump what the user meant to leave out.
    for key in definitions:
        if key.isupper() and key not in _MODULE_KEYS:
            close = difflib.get_close_matches(key, _MODULE_KEYS, n=1, cutoff=0.7)
            if close:
                raise QuerySetError(
                    f"{where} defines {key}, which monarch does not read",
                    hint=f"did you mean {close[0]}?",
                )


def _collection_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise QuerySetError(f"{where}: collection names must be non-empty strings, not {value!r}")
    return value


def _collection_query(name: str, value: object, where: str) -> CollectionQuery:
    here = f"{where}: COLLECTIONS[{name!r}]"
    if not isinstance(value, Mapping):
        raise QuerySetError(f"{here} must be a dict with filter/projection/sort/limit/transform")
    unknown = sorted(set(value) - _QUERY_KEYS)
    if unknown:
        raise QuerySetError(
            f"{here} has unknown key(s) {', '.join(map(repr, unknown))}",
            hint="the keys are: " + ", ".join(sorted(_QUERY_KEYS)),
        )
    filter_ = value.get("filter") or {}
    projection = value.get("projection")
    limit = value.get("limit") or 0
    transform = value.get("transform")
    if not isinstance(filter_, Mapping):
        raise QuerySetError(f"{here}: filter must be a dict (a find() filter)")
    if projection is not None and not isinstance(projection, Mapping):
        raise QuerySetError(f"{here}: projection must be a dict (a find() projection)")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise QuerySetError(f"{here}: limit must be a positive integer")
    if transform is not None and not callable(transform):
        raise QuerySetError(f"{here}: transform must be a function taking and returning a dict")
    return CollectionQuery(
        filter=dict(filter_),
        projection=dict(projection) if projection is not None else None,
        sort=_sort(value.get("sort"), here),
        limit=limit,
        transform=transform,
    )


def _sort(value: object, here: str) -> tuple[tuple[str, int], ...] | None:
    if value is None:
        return None
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else (
        value if isinstance(value, list | tuple) else ()
    )
    try:
        pairs = tuple((str(k), int(d)) for k, d in items)
    except (TypeError, ValueError):
        pairs = ()
    if not pairs or any(d not in (1, -1) for _, d in pairs):
        raise QuerySetError(f"{here}: sort must be a list of (field, 1 or -1) pairs")
    return pairs


TEMPLATE = '''\
"""Query set {name!r}: what `monarch backup ENV --query-set {name}` and
`monarch copy_db FROM:TO --query-set {name}` take from the database.

Every name below is optional; as written, this query set dumps everything unchanged.
Collections named in neither COLLECTIONS nor EXCLUDE are dumped whole (unless INCLUDE_OTHERS
is False). Only collections with a "transform" are decoded into dicts; the rest stay raw BSON.
"""

import hashlib


def fake_email(doc):
    """Replace a real address by a stable fake one (the same input gives the same fake)."""
    if doc.get("email"):
        digest = hashlib.sha256(str(doc["email"]).encode()).hexdigest()[:12]
        doc["email"] = f"user-{{digest}}@example.invalid"
    return doc  # return None to leave the document out


COLLECTIONS = {{
    # "users": {{
    #     "filter": {{"deleted": {{"$ne": True}}}},  # a find() filter
    #     "projection": {{"password_hash": 0}},   # a find() projection
    #     "sort": [("created_at", -1)],          # matters with a limit
    #     "limit": 10000,                        # at most this many documents
    #     "transform": fake_email,               # fn(dict) -> dict (or None)
    # }},
}}

# Collections left out entirely; shell-style patterns such as "logs_*" work.
EXCLUDE = []

# False: dump only the collections named in COLLECTIONS.
INCLUDE_OTHERS = True
'''


def generate_query_set(config: Config, name: str, *, force: bool = False) -> Path:
    """Write a commented template for query set ``name`` and return its path.

    An existing file is kept unless ``force``; the template itself dumps everything unchanged.
    """
    path = query_set_path(config, name)
    if path.exists() and not force:
        raise UsageError(
            f"{path} already exists; nothing was changed", hint="edit it, or pass --force"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(TEMPLATE.format(name=name), encoding="utf-8")
    temp.replace(path)
    return path


