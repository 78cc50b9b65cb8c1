"""SQL text as the SQL engines cut it into statements, and what they offer to run it.

Statements of a ``.sql`` migration are sent one at a time: an error then names the statement
(and its line), and a script that must not run inside a transaction (``CREATE INDEX
CONCURRENTLY``) can run at all. Each SQL engine cuts a script the way its own shell does (see
:mod:`monarch.engines.postgres.sql` and :mod:`monarch.engines.sqlite.sql`); what is common to
them is here: :class:`Statement`, skipping blanks and comments, and the :class:`SQLDialect` an
engine with ``.sql`` migrations gives through :class:`SQLEngine`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

_SPACE = frozenset(" \t\r\n\f\v")
WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
"""An unquoted SQL word (keyword or identifier)."""
# First words of statements that begin or end a transaction.
_TRANSACTION_CONTROL = frozenset({"begin", "start", "commit", "end", "rollback", "abort"})


@dataclass(frozen=True)
class Statement:
    """One statement: its text (from its first significant character to its semicolon, if it
    has one) and ``start``, the offset of that first character in the script."""

    text: str
    start: int

    def first_words(self, count: int = 2) -> list[str]:
        """The statement's first ``count`` words, lower-cased (comments between them skipped)."""
        words: list[str] = []
        i = 0
        while len(words) < count:
            i = skip_insignificant(self.text, i)
            match = WORD.match(self.text, i)
            if match is None:
                break
            words.append(match.group(0).lower())
            i = match.end()
        return words

    @property
    def controls_transaction(self) -> bool:
        """Whether it is ``BEGIN``, ``COMMIT``, ``ROLLBACK`` (but not ``ROLLBACK TO``)..."""
        words = self.first_words()
        if not words or words[0] not in _TRANSACTION_CONTROL:
            return False
        return not (words[0] == "rollback" and words[1:] == ["to"])


class SQLDialect(Protocol):
    """An engine's way with SQL scripts, bound to its migration connection."""

    def split(self, text: str) -> list[Statement]:
        """The statements of ``text``, in order, cut the way the database's own shell does."""
        ...

    def execute(self, statement: Statement) -> None:
        """Run ``statement`` on the migration connection (in whatever transaction it is in).

        A database error is raised as :class:`~monarch.errors.StatementFailed`, with the
        server's message and the offset in the statement it blames."""
        ...


@runtime_checkable
class SQLEngine(Protocol):
    """An engine that runs ``.sql`` migrations (its registry row has ``sql_files``)."""

    def sql(self) -> SQLDialect:
        """Its :class:`SQLDialect`, on the connection migrations use."""
        ...


def skip_insignificant(
    text: str, i: int = 0, end: int | None = None, *, nested: bool = True
) -> int:
    """The offset of the first character at or after ``i`` that is not blank or a comment.

    ``nested``: ``/* */`` comments nest (PostgreSQL), or end at the first ``*/`` (SQLite).
    """
    stop = len(text) if end is None else end
    while i < stop:
        if text[i] in _SPACE:
            i += 1
        elif text.startswith("--", i):
            newline = text.find("\n", i, stop)
            i = stop if newline < 0 else newline + 1
        elif text.startswith("/*", i):
            i = _after_block_comment(text, i, nested=nested)
        else:
            return i
    return stop


def quote_identifier(name: str) -> str:
    """``name`` as an SQL identifier in double quotes (inner quotes doubled), for statements
    built from a table's name."""
    return '"' + name.replace('"', '""') + '"'


def has_sql(text: str) -> bool:
    """Whether ``text`` holds anything but blanks and comments."""
    return skip_insignificant(text) < len(text)


def _after_block_comment(text: str, i: int, *, nested: bool = True) -> int:
    """The offset just past the ``/* ... */`` comment at ``i``."""
    if not nested:
        close = text.find("*/", i + 2)
        return len(text) if close < 0 else close + 2
    n = len(text)
    level = 0
    j = i
    while j < n:
        if text.startswith("/*", j):
            level += 1
            j += 2
        elif text.startswith("*/", j):
            level -= 1
            j += 2
            if level == 0:
                return j
        else:
            j += 1
    return n
