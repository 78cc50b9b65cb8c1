"""Cutting a SQL script into statements, the way each database's own shell does.

Statements of a ``.sql`` migration are sent one at a time: an error then names the statement
(and its line), and a script that must not run inside a transaction (``CREATE INDEX
CONCURRENTLY``) can run at all. PostgreSQL would run a whole multi-statement string as one
implicit transaction, and :mod:`sqlite3` executes one statement per call.

- PostgreSQL: a semicolon ends a statement unless it is inside a quoted string (``'...'``,
  ``E'...'`` with backslash escapes), a quoted identifier, a dollar-quoted body (``$$...$$``,
  ``$tag$...$tag$``), a comment (``--``, nested ``/* */``), parentheses, or the ``BEGIN ATOMIC
  ... END`` body of a ``CREATE FUNCTION``/``PROCEDURE``: the rules of psql.
- SQLite: a semicolon ends a statement where :func:`sqlite3.complete_statement` says the text
  up to it is complete (that is SQLite's own tokenizer; it knows trigger bodies).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

_SPACE = frozenset(" \t\r\n\f\v")
_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_DOLLAR = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_ROUTINES = frozenset({"function", "procedure"})
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
            match = _WORD.match(self.text, i)
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


def has_sql(text: str) -> bool:
    """Whether ``text`` holds anything but blanks and comments."""
    return skip_insignificant(text) < len(text)


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
        elif (match := _WORD.match(text, i)) is not None:
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


def split_sqlite(text: str) -> list[Statement]:
    """The statements of a SQLite script, cut where SQLite's tokenizer says one is complete."""
    statements: list[Statement] = []
    start = 0
    for semicolon in re.finditer(";", text):
        end = semicolon.end()
        if not sqlite3.complete_statement(text[start:end]):
            continue
        first = skip_insignificant(text, start, end, nested=False)
        if first < end - 1:  # more than a lone semicolon
            statements.append(Statement(text[first:end], first))
        start = end
    first = skip_insignificant(text, start, nested=False)
    if first < len(text):
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
