"""A small user project for the test kit's tests: its monarch.toml, migrations and test files,
written into a pytester folder, and ways to look at a database from outside monarch."""

from __future__ import annotations

import sqlite3
import textwrap
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pymongo import MongoClient

from tests.migrations.driver import migration_source

ENGINES = ("sqlite", "postgres", "mongo")

# (run, rollback) per engine and migration: a table (collection) of two items; a third item
# whose rollback removes it (right) or, by a wrong filter, does not (wrong); every item's n
# scaled up, a rollback that, by a wrong filter, scales none back.
_SQL = {
    "create_items": (
        'self.conn.execute("CREATE TABLE items (id integer PRIMARY KEY, n integer)")\n'
        'self.conn.execute("INSERT INTO items VALUES (1, 1), (2, 2)")',
        'self.conn.execute("DROP TABLE items")',
    ),
    "add_item": (
        'self.conn.execute("INSERT INTO items VALUES (3, 3)")',
        'self.conn.execute("DELETE FROM items WHERE id = 3")',
    ),
    "add_item_wrong": (
        'self.conn.execute("INSERT INTO items VALUES (3, 3)")',
        'self.conn.execute("DELETE FROM items WHERE n > 5")',
    ),
    "scale_wrong": (
        'self.conn.execute("UPDATE items SET n = n * 10")',
        'self.conn.execute("UPDATE items SET n = n / 10 WHERE n > 100")',
    ),
}
_MONGO = {
    "create_items": (
        'self.db.items.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])',
        "self.db.items.drop()",
    ),
    "add_item": (
        'self.db.items.insert_one({"_id": 3, "n": 3})',
        'self.db.items.delete_one({"_id": 3})',
    ),
    "add_item_wrong": (
        'self.db.items.insert_one({"_id": 3, "n": 3})',
        'self.db.items.delete_many({"n": {"$gt": 5}})',
    ),
    "scale_wrong": (
        'self.db.items.update_many({}, {"$mul": {"n": 10}})',
        'self.db.items.update_many({"n": {"$gt": 100}}, {"$mul": {"n": 0.1}})',
    ),
}
BASES = {"sqlite": "SQLiteMigration", "postgres": "PostgresMigration", "mongo": "MongoMigration"}
ITEMS = {"sqlite": "items", "postgres": "public.items", "mongo": "items"}
"""The name fingerprints and inventories give the items table (collection)."""


@dataclass
class UserProject:
    """A project in ``pytester``'s folder whose environment ``test`` is ``url`` (``engine``)."""

    pytester: pytest.Pytester
    engine: str
    url: str

    @property
    def root(self) -> Path:
        return self.pytester.path

    def setup(self, *, files: tuple[str, ...] = (), ini: str = "") -> None:
        """monarch.toml (``test``, and an environment on SQLite file NAME.db for each NAME of
        ``files``), pytest.ini (with the lines ``ini``), conftest.py."""
        others = "".join(f'[environments.{n}]\nurl = "sqlite:///{n}.db"\n' for n in files)
        self.pytester.makefile(
            ".toml",
            monarch=f'backups = "file://backups"\n\n[environments.test]\nurl = "{self.url}"\n'
            + others,
        )
        self.pytester.makeini(f"[pytest]\nmonarch_environment = test\n{ini}")
        self.pytester.makeconftest('pytest_plugins = ["monarch.testing"]\n')

    def migration(self, stamp: str, kind: str, name: str | None = None) -> None:
        """``migrations/<stamp>_<name or kind>.py``, of ``kind`` (see ``_SQL``)."""
        run, rollback = (_MONGO if self.engine == "mongo" else _SQL)[kind]
        folder = self.root / "migrations"
        folder.mkdir(exist_ok=True)
        text = migration_source(BASES[self.engine], run, rollback=rollback)
        (folder / f"{stamp}_{name or kind}.py").write_text(text)

    def tests(self, source: str) -> None:
        self.pytester.makepyfile(test_app=textwrap.dedent(source))

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "no:cacheprovider", *args)


def database_exists(engine: str, url: str, database: str) -> bool:
    """Whether ``database`` (SQLite: a file) exists on the server of ``url``."""
    if engine == "sqlite":
        return Path(database).exists()
    if engine == "postgres":
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            return row.fetchone() is not None
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        return database in client.list_database_names()
    finally:
        client.close()


def sqlite_rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
