"""A test project on a PostgreSQL database or a SQLite file: migrations are written for the
engine at hand, and the database is read back with the engine's own driver."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.migrations.driver import Driver, migration_source

# Counts a migration's runs (or rollbacks) in a table, the same SQL on both engines.
_COUNT = (
    "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, n integer NOT NULL);\n"
    "INSERT INTO {table} (name, n) VALUES ({name}, 1) "
    "ON CONFLICT (name) DO UPDATE SET n = {table}.n + 1;"
)


@dataclass
class SQLProject(Driver):
    """``development`` and ``production`` (protected) on one PostgreSQL database or SQLite file.

    ``engine`` is ``postgres`` or ``sqlite``.
    """

    root: Path
    engine: str
    url: str
    spawned: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The migration base class of the engine."""
        return "PostgresMigration" if self.engine == "postgres" else "SQLiteMigration"

    @property
    def param(self) -> str:
        """The driver's placeholder for a query parameter."""
        return "%s" if self.engine == "postgres" else "?"

    # -- writing migrations

    def write(
        self,
        name: str,
        run: str = "pass",
        *,
        rollback: str | None = None,
        attrs: str = "",
        header: str = "",
    ) -> Path:
        """Write ``migrations/<name>.py``: a class of the engine whose run() body is ``run``."""
        path = self.migrations / f"{name}.py"
        path.write_text(
            migration_source(self.base, run, rollback=rollback, attrs=attrs, header=header)
        )
        return path

    def write_sql(self, name: str, up: str, down: str | None = None, header: str = "") -> Path:
        """Write ``migrations/<name>.sql``; ``down`` becomes its rollback section."""
        text = (header + "\n" if header else "") + textwrap.dedent(up).strip() + "\n"
        if down is not None:
            text += "\n-- monarch:rollback\n" + textwrap.dedent(down).strip() + "\n"
        path = self.migrations / f"{name}.sql"
        path.write_text(text)
        return path

    def counting(self, name: str, *, rollback: bool = True, extra: str = "") -> Path:
        """A Python migration that counts its runs in ``runs`` (its rollbacks in ``undone``)."""
        run = self._count("runs") + "\n" + textwrap.dedent(extra).strip()
        return self.write(name, run, rollback=self._count("undone") if rollback else None)

    def _count(self, table: str) -> str:
        create, insert = _COUNT.format(table=table, name=self.param).splitlines()
        return f"self.conn.execute({create!r})\nself.conn.execute({insert!r}, (self.name,))"

    def counting_sql(self, name: str, *, rollback: bool = True, header: str = "") -> Path:
        """The same as a ``.sql`` file."""
        literal = f"'{name}'"
        return self.write_sql(
            name,
            _COUNT.format(table="runs", name=literal),
            _COUNT.format(table="undone", name=literal) if rollback else None,
            header=header,
        )

    # -- reading the database

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection of our own to the database (autocommit)."""
        if self.engine == "postgres":
            conn: Any = psycopg.connect(self.url, autocommit=True)
        else:
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return [tuple(row) for row in conn.execute(sql, params).fetchall()]

    def tables(self) -> list[str]:
        if self.engine == "postgres":
            rows = self.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        else:
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return sorted(str(row[0]) for row in rows)

    def app_tables(self) -> list[str]:
        """The tables that are not monarch's own (its history, and the lock on PostgreSQL)."""
        return [t for t in self.tables() if not t.startswith("monarch_")]

    def indexes(self) -> list[str]:
        if self.engine == "postgres":
            rows = self.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        else:
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'index'")
        return sorted(str(row[0]) for row in rows)

    def counts(self, table: str) -> dict[str, int]:
        if table not in self.tables():
            return {}
        return {str(name): int(n) for name, n in self.query(f"SELECT name, n FROM {table}")}

    def runs(self) -> dict[str, int]:
        return self.counts("runs")

    def undone(self) -> dict[str, int]:
        return self.counts("undone")

    def records(self) -> dict[str, dict[str, Any]]:
        """The rows of ``monarch_migrations`` by name (the checkpoint decoded on SQLite)."""
        if "monarch_migrations" not in self.tables():
            return {}
        with self.connect() as conn:
            cursor = conn.execute("SELECT * FROM monarch_migrations")
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            if isinstance(row.get("checkpoint"), str):
                row["checkpoint"] = json.loads(row["checkpoint"])
        return {row["name"]: row for row in rows}

    def snapshot(self) -> dict[str, Any]:
        """Every table's rows, sorted, and the indexes: the whole database, history included."""
        tables = {
            table: sorted(self.query(f'SELECT * FROM "{table}"'), key=repr)
            for table in self.tables()
        }
        return {"tables": tables, "indexes": self.indexes()}
