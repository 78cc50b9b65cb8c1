"""SQL scripts on SQLite: cut where SQLite's tokenizer says a statement is complete, run one
statement at a time (:mod:`sqlite3` executes one statement per call).

A semicolon ends a statement where :func:`sqlite3.complete_statement` says the text up to it
is complete (that is SQLite's own tokenizer; it knows trigger bodies).
"""

from __future__ import annotations

import re
import sqlite3

from monarch.engines.sqltext import Statement, skip_insignificant
from monarch.errors import StatementFailed


class SQLiteSQL:
    """:class:`~monarch.engines.sqltext.SQLDialect` of SQLite, on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def split(self, text: str) -> list[Statement]:
        return split_sqlite(text)

    def execute(self, statement: Statement) -> None:
        try:
            self.conn.execute(statement.text)
        except sqlite3.Error as exc:
            # sqlite3 does not say where in the statement: the statement's line is named.
            raise StatementFailed(str(exc), position=0) from exc


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
