"""Write accounting: what a migration run wrote, per collection or table.

Engines observe their own driver (MongoDB: the write commands' replies; PostgreSQL and SQLite:
each statement's row count) and add what they see to a :class:`Ledger`; the runner opens one
accounting *window* around each migration, and whatever the ledger hears while the window is
open is that migration's :class:`Accounting`, stored in its history record. Outside a window
the ledger drops what it hears, so observing costs a flag check.

The stored form (:meth:`Accounting.to_json`) is plain JSON: ``[{"target": name, counter: n}]``
with only non-zero counters, ``name`` being a collection or table (``db.collection`` for another
MongoDB database; ``""`` where SQL does not name the table, as in ``DROP INDEX``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

COUNTERS = (
    "inserted",
    "matched",
    "modified",
    "upserted",
    "deleted",
    "indexes_created",
    "indexes_dropped",
    "created",
    "dropped",
)
"""The counters of one target, in display order. ``created``/``dropped`` count the collection
or table itself being created or dropped."""

SWITCH = "MONARCH_WRITE_ACCOUNTING"
"""The environment variable that turns accounting off (``off``, ``0``, ``no``, ``false``)."""

NO_TABLE = ""  # the target of what SQL does not attribute to a table (DROP INDEX name)


@dataclass
class Counts:
    """The writes made to one collection or table."""

    inserted: int = 0
    matched: int = 0
    modified: int = 0
    upserted: int = 0
    deleted: int = 0
    indexes_created: int = 0
    indexes_dropped: int = 0
    created: int = 0
    dropped: int = 0

    def add(self, other: Counts) -> None:
        """Add ``other``'s counters to these."""
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict[str, int]:
        """The non-zero counters."""
        return {name: value for name in COUNTERS if (value := getattr(self, name))}

    @classmethod
    def from_json(cls, value: Any) -> Counts:
        """Counters from stored JSON; unknown keys and non-integer values are ignored."""
        known = {f.name for f in fields(cls)}
        if not isinstance(value, dict):
            return cls()
        return cls(**{k: v for k, v in value.items() if k in known and type(v) is int})

    def describe(self) -> str:
        """``3 inserted, 1 index created``: the non-zero counters in words."""
        return ", ".join(f"{value} {_word(name, value)}" for name, value in self.to_json().items())

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in COUNTERS)


def _word(counter: str, value: int) -> str:
    if counter.startswith("indexes_"):
        noun = "index" if value == 1 else "indexes"
        return f"{noun} {counter.removeprefix('indexes_')}"
    return counter


@dataclass
class Accounting:
    """Per-target :class:`Counts` of one migration run (targets in the order first written)."""

    targets: dict[str, Counts] = field(default_factory=dict)

    def add(self, target: str, counts: Counts) -> None:
        """Add ``counts`` to ``target``'s (empty counts add no target)."""
        if counts:
            self.targets.setdefault(target, Counts()).add(counts)

    def merge(self, other: Accounting) -> Accounting:
        """A new accounting holding both this one's counts and ``other``'s."""
        merged = Accounting()
        for source in (self, other):
            for target, counts in source.targets.items():
                merged.add(target, counts)
        return merged

    def total(self) -> Counts:
        """Every target's counts added up."""
        total = Counts()
        for counts in self.targets.values():
            total.add(counts)
        return total

    def to_json(self) -> list[dict[str, Any]]:
        """``[{"target": name, counter: n, ...}]``, non-zero counters only, in target order.

        A list, not a mapping by name: collection names may hold dots, which MongoDB does not
        take in a document's keys.
        """
        return [{"target": target, **counts.to_json()}
                for target, counts in self.targets.items() if counts]

    @classmethod
    def from_json(cls, value: Any) -> Accounting | None:
        """The accounting stored as ``value``; None when there is none (records written before
        monarch kept accounting, or by monarch 0.0.x)."""
        if not isinstance(value, list):
            return None
        accounting = cls()
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("target"), str):
                accounting.add(item["target"], Counts.from_json(item))
        return accounting

    def lines(self) -> list[str]:
        """One line per target: ``users: 3 inserted, 2 matched, 2 modified``."""
        return [f"{target or '(no table named)'}: {counts.describe()}"
                for target, counts in self.targets.items() if counts]

    def __bool__(self) -> bool:
        return any(self.targets.values())


def monarch_own(name: str) -> bool:
    """Whether a collection or table named ``name`` is monarch's own bookkeeping (history,
    lock, journal: their names begin with ``monarch_``)."""
    return name.startswith("monarch_")


_OFF = frozenset({"off", "0", "no", "false"})


class Ledger:
    """Where one engine's observers report writes, counted while a window is open.

    Reports may come from any thread (a MongoDB client's commands from a migration's own
    threads count too); each is attributed to the window open when it arrives. Targets that
    ``ignore`` returns True for (monarch's own history, lock and journal) are never counted.
    """

    def __init__(self, ignore: Callable[[str], bool] | None = None) -> None:
        self.enabled = os.environ.get(SWITCH, "on").strip().lower() not in _OFF
        """False when accounting is turned off: engines then observe nothing, and the runner
        records no accounting (None, not "wrote nothing")."""
        self._ignore = ignore or (lambda _target: False)
        self._open: Accounting | None = None
        self._mutex = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether a window is open: observers skip all work when it is not."""
        return self._open is not None

    @contextmanager
    def window(self, into: Accounting | None = None) -> Iterator[Accounting]:
        """Count what is reported until the block ends into ``into`` (default: a new
        accounting), which is yielded."""
        accounting = Accounting() if into is None else into
        self._open = accounting
        try:
            yield accounting
        finally:
            self._open = None

    def ignores(self, target: str) -> bool:
        """Whether writes to ``target`` are monarch's own bookkeeping, never counted."""
        return self._ignore(target)

    def add(self, target: str, counts: Counts) -> None:
        """Count ``counts`` against ``target`` in the open window, if any."""
        accounting = self._open
        if accounting is None or not counts or self._ignore(target):
            return
        with self._mutex:
            accounting.add(target, counts)

    def statement(self, text: str, rowcount: int) -> None:
        """Count one executed SQL statement whose cursor reported ``rowcount``."""
        if self._open is None:
            return
        for target, counts in statement_counts(text, rowcount):
            self.add(target, counts)


# SQL statements, parsed simply: the verb and the table it writes -----------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[\w$]+)'
_NAME = rf"({_IDENT}(?:\s*\.\s*{_IDENT})*)"
_NAMES = rf"({_IDENT}(?:\s*\.\s*{_IDENT})*(?:\s*,\s*{_IDENT}(?:\s*\.\s*{_IDENT})*)*)"
_LEAD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for kind, pattern in (
        ("insert", rf"(?:insert(?:\s+or\s+(?:(replace)|\w+))?|(replace))\s+into\s+{_NAME}"),
        ("update", rf"update\s+(?:or\s+\w+\s+)?(?:only\s+)?{_NAME}"),
        ("delete", rf"delete\s+from\s+(?:only\s+)?{_NAME}"),
        ("create index", rf"create\s+(?:unique\s+)?index\s+(?:concurrently\s+)?"
                         rf"(?:if\s+not\s+exists\s+)?(?:{_IDENT}(?:\s*\.\s*{_IDENT})?\s+)?"
                         rf"on\s+(?:only\s+)?{_NAME}"),
        ("drop index", rf"drop\s+index\s+(?:concurrently\s+)?(?:if\s+exists\s+)?{_NAMES}"),
        ("create table", rf"create\s+(?:(?:global\s+|local\s+)?(?:temp|temporary|unlogged)\s+)?"
                         rf"table\s+(?:if\s+not\s+exists\s+)?{_NAME}"),
        ("drop table", rf"drop\s+table\s+(?:if\s+exists\s+)?{_NAMES}"),
    )
)
_CONFLICT = re.compile(r"\bon\s+conflict\b.*\bdo\s+update\b", re.IGNORECASE | re.DOTALL)
_PARTS = re.compile(_IDENT)


@lru_cache(maxsize=512)
def parse_statement(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``(kind, names)`` of a statement monarch counts, or None.

    Kinds: ``insert`` / ``upsert`` (``INSERT ... ON CONFLICT ... DO UPDATE``, ``INSERT OR
    REPLACE``, ``REPLACE INTO``) / ``update`` / ``delete`` (with their table), ``create index``
    (its table), ``drop index`` (its index names), ``create table``, ``drop table`` (tables).
    Unquoted names are lower-cased, quotes removed. Statements starting otherwise (``WITH``,
    ``MERGE``, ``COPY``, ``ALTER``...) are not counted.
    """
    start = _LEAD.match(text)
    offset = start.end() if start else 0
    for kind, pattern in _PATTERNS:
        match = pattern.match(text, offset)
        if match is None:
            continue
        groups = [g for g in match.groups() if g is not None]
        names = tuple(_name(part) for part in re.split(r"\s*,\s*", groups[-1]))
        upsert = kind == "insert" and (len(groups) > 1 or _CONFLICT.search(text, match.end()))
        return ("upsert" if upsert else kind), names
    return None


def _name(written: str) -> str:
    """``public."Users"`` -> ``public.Users``; ``Users`` -> ``users``."""
    parts = []
    for part in _PARTS.findall(written):
        if part[0] == '"':
            parts.append(part[1:-1].replace('""', '"'))
        elif part[0] in "`[":
            parts.append(part[1:-1])
        else:
            parts.append(part.lower())
    return ".".join(parts)


def statement_counts(text: str, rowcount: int) -> list[tuple[str, Counts]]:
    """What one executed statement wrote, as ``(target, counts)`` pairs (often none)."""
    parsed = parse_statement(text)
    if parsed is None:
        return []
    kind, names = parsed
    rows = max(rowcount, 0)
    if kind == "insert":
        return [(names[0], Counts(inserted=rows))]
    if kind == "upsert":
        # The server says how many rows were written, not how many of them were new.
        return [(names[0], Counts(upserted=rows))]
    if kind == "update":
        # Both engines rewrite every row an UPDATE matches.
        return [(names[0], Counts(matched=rows, modified=rows))]
    if kind == "delete":
        return [(names[0], Counts(deleted=rows))]
    if kind == "create index":
        return [(names[0], Counts(indexes_created=1))]
    if kind == "drop index":
        return [(NO_TABLE, Counts(indexes_dropped=len(names)))]
    if kind == "create table":
        return [(names[0], Counts(created=1))]
    return [(name, Counts(dropped=1)) for name in names]
