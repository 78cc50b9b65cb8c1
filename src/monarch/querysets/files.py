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

Each key is optional, but a file must define at least one (or a class-based query set, see
:mod:`monarch.querysets.classes`): a file that defines nothing monarch reads is refused,
never taken to mean "everything". Collections named in neither ``COLLECTIONS`` nor ``EXCLUDE``
are dumped whole unless ``INCLUDE_OTHERS`` is False. A name in ``COLLECTIONS`` that the
database lacks is an error: a typo must not let unscrubbed data through. Documents pass through
raw, except in collections with a ``transform``, which alone are decoded into dicts (and
re-encoded).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.util
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from monarch.errors import QuerySetError, UsageError
from monarch.querysets.classes import (
    SUFFIX,
    declared_classes,
    find_by_name,
    query_set_classes,
    run_class,
)
from monarch.querysets.plan import WHOLE, CollectionQuery, QueryPlan

if TYPE_CHECKING:
    from pymongo.database import Database

    from monarch.config import Config
    from monarch.querysets.classes import QuerySet as ClassBased

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_QUERY_KEYS = frozenset({"filter", "projection", "sort", "limit", "transform"})
_MODULE_KEYS = ("COLLECTIONS", "EXCLUDE", "INCLUDE_OTHERS")


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


def load_query_set(
    config: Config, name: str, *, database: Database[Any] | None = None
) -> QueryPlan:
    """Load query set ``name`` (running its file, as any Python file) and check its shape.

    ``name`` is a file of ``querysets/`` without ``.py``, or, for a class-based query set (see
    :mod:`monarch.querysets.classes`), its class name or its file name without
    ``_queryset``. A class-based one runs against ``database`` (the source's), which it needs.
    Raises :class:`~monarch.errors.QuerySetError` if it is missing, fails to run, or defines
    nothing monarch can read (it is never taken for "everything"); the message names the file
    and what is wrong.
    """
    path, class_name = _locate(config, name)
    module_name = f"monarch_querysets.{path.stem.replace('-', '_')}"
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
    definitions = vars(module)
    classes = query_set_classes(definitions, module_name)
    keys = [key for key in _MODULE_KEYS if key in definitions]
    if classes and keys:
        raise QuerySetError(
            f"{path} defines both a QuerySet class and {', '.join(keys)}; monarch cannot tell "
            "which one to follow, so nothing was dumped",
            hint="keep one of the two",
        )
    if classes:
        return _run_class(path, classes, class_name, database)
    if not keys:
        _check_spelling(definitions, str(path))
        raise QuerySetError(
            f"{path} defines no query set: neither COLLECTIONS, EXCLUDE nor INCLUDE_OTHERS, "
            "nor a class based on monarch.QuerySet; it is refused rather than taken to mean "
            "everything",
            hint="define EXCLUDE = [] to dump everything on purpose, or see "
            "`monarch generate_query_set NAME` for the template",
        )
    return query_set_from(name, definitions, path=path)


@dataclass(frozen=True)
class QuerySetInfo:
    """One query set of the project, as :func:`list_query_sets` finds it."""

    name: str
    """What ``--query-set`` takes: the file name (module kind) or the class name."""
    kind: str
    """``"module"`` (COLLECTIONS/EXCLUDE/INCLUDE_OTHERS) or ``"class"`` (monarch.QuerySet)."""
    path: Path


def list_query_sets(config: Config) -> list[QuerySetInfo]:
    """The project's query sets, both kinds, by file name; their files are read, not run."""
    found: list[QuerySetInfo] = []
    for path in _query_set_files(config):
        classes = declared_classes(path)
        if classes:
            found += [QuerySetInfo(c, "class", path) for c in classes]
        else:
            found.append(QuerySetInfo(path.stem, "module", path))
    return found


def _query_set_files(config: Config) -> list[Path]:
    folder = config.querysets_dir
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.glob("*.py") if p.is_file() and not p.name.startswith(("_", "."))
    )


def _locate(config: Config, name: str) -> tuple[Path, str | None]:
    """The file of query set ``name``, and the class when ``name`` is a class name."""
    path = query_set_path(config, name)
    if path.is_file():
        return path, None
    found = find_by_name(config.querysets_dir, name)
    if found is not None:
        return found
    known = sorted({q.name for q in list_query_sets(config)})
    raise QuerySetError(
        f"no query set {name!r} (nor a query set class of that name in *{SUFFIX}.py): "
        f"{path} does not exist" + (f" (known: {', '.join(known)})" if known else ""),
        hint=f"create it with `monarch generate_query_set {name}`",
    )


def _run_class(
    path: Path,
    classes: list[type[ClassBased]],
    class_name: str | None,
    database: Database[Any] | None,
) -> QueryPlan:
    by_name = {cls.__name__: cls for cls in classes}
    if class_name is not None and class_name in by_name:
        cls = by_name[class_name]
    elif len(classes) == 1:
        cls = classes[0]
    else:
        raise QuerySetError(
            f"{path} defines several query set classes ({', '.join(sorted(by_name))})",
            hint="select one by its class name: --query-set " + sorted(by_name)[0],
        )
    if database is None:
        raise QuerySetError(
            f"{path}: {cls.__name__} is a class-based query set: it needs a MongoDB database "
            "to run against",
            hint="use it with a MongoDB environment; query sets do not apply to PostgreSQL or "
            "SQLite, whose backups take the whole database",
        )
    plan = run_class(cls, database, path)
    collections = {name: CollectionQuery(filter=query) for name, query in plan.filters.items()}
    collections.update((name, WHOLE) for name in plan.whole)
    return QueryPlan(plan.name, MappingProxyType(collections), (), False, path)


def query_set_from(
    name: str, definitions: Mapping[str, Any], *, path: Path | None = None
) -> QueryPlan:
    """Build a QueryPlan from a mapping shaped like a query set file's globals."""
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
    return QueryPlan(name, MappingProxyType(collections), patterns, include_others, path)


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


