"""Migrations written as plain ``.sql`` files, for PostgreSQL and SQLite environments.

A file ``<yyyymmddHHMMSS>_<name>.sql`` holds the statements that migrate, then, optionally, a
line ``-- monarch:rollback`` followed by the statements that undo them::

    CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL);
    CREATE UNIQUE INDEX users_email ON users (email);

    -- monarch:rollback
    DROP TABLE users;

Lines of the form ``-- monarch:<directive>`` are instructions to monarch (any other comment is
SQL's): ``-- monarch:rollback`` (at most once) and ``-- monarch:transactional=false`` (the file
runs outside a transaction: each statement commits on its own, for ``CREATE INDEX
CONCURRENTLY`` or ``VACUUM``). A line that starts ``-- monarch:`` but is neither is an error,
so that a misspelt rollback marker never runs the rollback as part of the migration.

Such a file becomes a :class:`SQLFileMigration` subclass, so it is discovered, ordered,
checksummed, planned, locked and recorded exactly like a Python migration. By default its
statements and its history record commit in one transaction. The environment's engine cuts the
file into statements and sends them one at a time (see :mod:`monarch.engines.sqltext`), so an
error names the file and the line of the statement that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from monarch.engines import registry
from monarch.engines.sqltext import has_sql
from monarch.errors import MigrationError, SQLError, StatementFailed
from monarch.migrations.migration import Migration

SUFFIX = ".sql"
ROLLBACK_MARKER = "-- monarch:rollback"
NON_TRANSACTIONAL = "-- monarch:transactional=false"

# A line that speaks to monarch, well-formed or not.
_DIRECTIVE_LINE = re.compile(r"^[ \t]*--[ \t]*monarch[ \t]*:(?P<rest>[^\r\n]*)\r?$", re.MULTILINE)
_DIRECTIVE = re.compile(r"(?P<key>[a-z_]+)(?:[ \t]*=[ \t]*(?P<value>[a-z]+))?[ \t]*", re.I)
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class Section:
    """The migrating or the rollback part of a file: its text and where it starts in the file."""

    text: str
    offset: int


@dataclass(frozen=True)
class SQLScript:
    """A parsed ``.sql`` migration file."""

    path: Path
    text: str
    up: Section
    down: Section | None
    transactional: bool

    def line_of(self, offset: int) -> int:
        """The 1-based line of the file at character ``offset``."""
        return self.text.count("\n", 0, offset) + 1


def parse(path: Path, data: bytes) -> SQLScript:
    """Read a ``.sql`` migration's sections and directives; errors name the file and line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(
            f"{path}: not UTF-8 text (byte {exc.start}); nothing was run",
            hint="save the file as UTF-8",
        ) from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise MigrationError(
            f"{path}, line {line}: a NUL character, which no SQL statement may hold; "
            "nothing was run",
            hint="the file is damaged or not a SQL script; restore it from version control",
        )
    marker: tuple[int, int] | None = None
    transactional: bool | None = None
    for found in _DIRECTIVE_LINE.finditer(text):
        line = text.count("\n", 0, found.start()) + 1
        where = f"{path}, line {line}"
        directive = _DIRECTIVE.fullmatch(found.group("rest").strip())
        key = directive.group("key").lower() if directive else ""
        value = (directive.group("value") or "").lower() if directive else ""
        if key == "rollback" and not value:
            if marker is not None:
                raise _bad(where, f"a second `{ROLLBACK_MARKER}` line (there can be one)")
            marker = (found.start(), found.end())
        elif key == "transactional" and value in _BOOLEANS:
            if transactional is not None:
                raise _bad(where, "a second `-- monarch:transactional=...` line")
            if marker is not None:
                raise _bad(where, "`-- monarch:transactional=...` must come before the rollback")
            transactional = _BOOLEANS[value]
        else:
            raise _bad(
                where,
                f"unknown monarch directive {found.group(0).strip()!r} (known: "
                f"`{ROLLBACK_MARKER}`, `-- monarch:transactional=false`)",
            )
    if marker is None:
        up, down = Section(text, 0), None
    else:
        up = Section(text[: marker[0]], 0)
        down = Section(text[marker[1] :], marker[1])
    return SQLScript(path, text, up, down, True if transactional is None else transactional)


def _bad(where: str, what: str) -> MigrationError:
    return MigrationError(
        f"{where}: {what}; nothing was run",
        hint="lines starting with `-- monarch:` are instructions to monarch; fix or reword it",
    )


class SQLFileMigration(Migration):
    """A ``.sql`` file as a migration: ``run()`` executes the statements before
    ``-- monarch:rollback``, ``rollback()`` the ones after it.

    Subclasses are made by :func:`migration_class`, one per file, with ``script`` set.
    """

    engines = frozenset(row.name for row in registry.engines() if row.sql_files)
    transactional = True
    script: ClassVar[SQLScript]

    def run(self) -> None:
        where = f" (before its `{ROLLBACK_MARKER}` line)" if self.script.down else ""
        self._execute(self.script.up, f"no SQL statements to run yet{where}")

    def rollback(self) -> None:
        if self.script.down is None:  # planning refuses this first; kept for direct calls
            raise NotImplementedError
        self._execute(self.script.down, f"no SQL statements after `{ROLLBACK_MARKER}`")

    @classmethod
    def has_rollback(cls) -> bool:
        """Whether the file has a rollback section with statements in it."""
        return cls.script.down is not None and has_sql(cls.script.down.text)

    @classmethod
    def kind(cls) -> str:
        return "an SQL migration"

    def _execute(self, section: Section, empty: str) -> None:
        script = self.script
        runtime = self._require_runtime()
        sql = runtime.sql()
        statements = sql.split(section.text)
        if not statements:
            raise MigrationError(f"{script.path.name} has {empty}")
        if self.transactional:
            for statement in statements:
                if statement.controls_transaction:
                    line = script.line_of(section.offset + statement.start)
                    raise MigrationError(
                        f"{script.path.name}, line {line}: "
                        f"`{' '.join(statement.first_words()).upper()}` would end the "
                        "transaction monarch runs the file in (with its history record); "
                        "nothing of it was run",
                        hint="remove the transaction control, or add the line "
                        f"`{NON_TRANSACTIONAL}` to run the file outside a transaction",
                    )
        for statement in statements:
            runtime.check()  # a run that lost its lock stops here, not later
            try:
                sql.execute(statement)
            except StatementFailed as exc:
                line = script.line_of(section.offset + statement.start + exc.position)
                raise SQLError(
                    f"{script.path.name}, line {line}: {exc}", path=str(script.path), line=line
                ) from exc


def migration_class(path: Path, data: bytes, class_name: str) -> type[SQLFileMigration]:
    """A :class:`SQLFileMigration` subclass for the ``.sql`` file at ``path`` (its ``data``)."""
    script = parse(path, data)
    attributes = {
        "script": script,
        "transactional": script.transactional,
        "__module__": __name__,
        "__doc__": f"The SQL migration {path.name}.",
    }
    return type(class_name, (SQLFileMigration,), attributes)

