"""SQL scripts on PostgreSQL: cut the way psql cuts them, run one statement at a time.

A semicolon ends a statement unless it is inside a quoted string (``'...'``, ``E'...'`` with
backslash escapes), a quoted identifier, a dollar-quoted body (``$$...$$``, ``$tag$...$tag$``),
a comment (``--``, nested ``/* */``), parentheses, or the ``BEGIN ATOMIC ... END`` body of a
``CREATE FUNCTION``/``PROCEDURE``: the rules of psql. (PostgreSQL would run a whole
multi-statement string as one implicit transaction.)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from monarch.engines.sqltext import WORD, Statement, skip_insignificant
from monarch.errors import StatementFailed

if TYPE_CHECKING:
    import psycopg

_DOLLAR = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_ROUTINES = frozenset({"function", "procedure"})


class PostgresSQL:
    """:class:`~monarch.engines.sqltext.SQLDialect` of PostgreSQL, on one connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def split(self, text: str) -> list[Statement]:
        return split_postgres(text)

    def execute(self, statement: Statement) -> None:
        import psycopg

        try:
            self.conn.execute(statement.text)
        except psycopg.Error as exc:
            diag = exc.diag
            position = 0
            if diag.statement_position and diag.statement_position.isdigit():
                # The server points at the offending token (1-based).
                position = int(diag.statement_position) - 1
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            message = diag.message_primary or lines[0]
            extra = [f"DETAIL: {diag.message_detail}"] if diag.message_detail else []
            extra += [f"HINT: {diag.message_hint}"] if diag.message_hint else []
            raise StatementFailed("\n".join([message, *extra]), position=position) from exc


def split_postgres(text: str) -> list[Statement]:
    """The statements of a PostgreSQL script (see the module doc for the rules)."""
    statements: list[Statement] = []
    n = len(text)
    i = 0
    first: int | None = None  # the current statement's first significant character
    words: list[str] = []  # its first words, to recognise CREATE [OR REPLACE] FUNCTION
    parens = depth = 0
    while i < n:
        i = skip_insignificant(text, i)
        if i >= n:
            break
        c = text[i]
        if c == ";" and parens == 0 and depth == 0:
            if first is not None:
                statements.append(Statement(text[first : i + 1], first))
            first, words = None, []
            i += 1
            continue
        if first is None:
            first = i
        if c == "'":
            i = _after_quoted(text, i, "'", backslashes=False)
        elif c == '"':
            i = _after_quoted(text, i, '"', backslashes=False)
        elif c == "$" and (tag := _DOLLAR.match(text, i)) is not None:
            close = text.find(tag.group(0), tag.end())
            i = n if close < 0 else close + len(tag.group(0))
        elif (match := WORD.match(text, i)) is not None:
            word = match.group(0).lower()
            i = match.end()
            if word == "e" and text.startswith("'", i):
                i = _after_quoted(text, i, "'", backslashes=True)
                continue
            if len(words) < 4:
                words.append(word)
            if word in ("begin", "case") and _defines_routine(words):
                depth += 1
            elif word == "end" and depth > 0:
                depth -= 1
        else:
            if c == "(":
                parens += 1
            elif c == ")" and parens > 0:
                parens -= 1
            i += 1
    if first is not None:
        statements.append(Statement(text[first:].rstrip(), first))
    return statements


def _defines_routine(words: list[str]) -> bool:
    """``CREATE [OR REPLACE] FUNCTION|PROCEDURE``: whose BEGIN ATOMIC body holds semicolons."""
    if not words or words[0] != "create":
        return False
    if len(words) > 1 and words[1] in _ROUTINES:
        return True
    return words[1:3] == ["or", "replace"] and len(words) > 3 and words[3] in _ROUTINES


def _after_quoted(text: str, i: int, quote: str, *, backslashes: bool) -> int:
    """The offset just past the quoted text starting at ``i`` (doubled quotes are escapes)."""
    n = len(text)
    j = i + 1
    while j < n:
        c = text[j]
        if backslashes and c == "\\":
            j += 2
        elif c == quote:
            if j + 1 < n and text[j + 1] == quote:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    return n  # unterminated: the server reports it


