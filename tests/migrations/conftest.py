"""Throwaway monarch projects whose environments point at a fresh database: ``project`` on the
MongoDB-wire test server, ``sql_project`` on the PostgreSQL test server and on a SQLite file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from tests.migrations.driver import CliResult, Driver, migration_source
from tests.migrations.sql_project import SQLProject

__all__ = ["AnyProject", "CliResult", "Driver", "Project", "SQLProject", "project_config"]


@dataclass
class Project(Driver):
    """A project folder with ``development`` (unprotected) and ``production`` (protected)
    environments, both on the test's own database."""

    root: Path
    url: str
    db: Database[dict[str, Any]]
    spawned: list[subprocess.Popen[str]] = field(default_factory=list)

    def write(
        self,
        name: str,
        run: str = "pass",
        *,
        rollback: str | None = None,
        attrs: str = "",
        header: str = "",
        crlf: bool = False,
    ) -> Path:
        """Write ``migrations/<name>.py`` with a class whose run() body is ``run``.

        ``name`` may omit the timestamp part of a full name only if it already has one.
        """
        text = migration_source(
            "MongoMigration", run, rollback=rollback, attrs=attrs, header=header
        )
        path = self.migrations / f"{name}.py"
        path.write_bytes(text.replace("\n", "\r\n").encode() if crlf else text.encode())
        return path

    def counting(self, name: str, *, rollback: bool = True, extra: str = "") -> Path:
        """A migration that counts its runs in ``runs`` (and its rollbacks in ``undone``)."""
        run = f"""
            self.db.runs.update_one({{"_id": self.name}}, {{"$inc": {{"n": 1}}}}, upsert=True)
            {extra}
        """
        undo = (
            'self.db.undone.update_one({"_id": self.name}, {"$inc": {"n": 1}}, upsert=True)'
            if rollback
            else None
        )
        return self.write(name, run, rollback=undo)

    def runs(self) -> dict[str, int]:
        return {d["_id"]: d["n"] for d in self.db.runs.find()}

    def undone(self) -> dict[str, int]:
        return {d["_id"]: d["n"] for d in self.db.undone.find()}

    def records(self) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d for d in self.db.monarch_migrations.find()}

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every collection's documents, sorted: the whole database, history included."""
        return {
            name: sorted(self.db[name].find(), key=lambda d: repr(d["_id"]))
            for name in sorted(self.db.list_collection_names())
        }


def project_config(url: str, root: Path) -> str:
    return (
        f'backups = "file://{root / "backups"}"\n\n'
        f'[environments.development]\nurl = "{url}"\n\n'
        f'[environments.production]\nurl = "{url}"\nprotected = true\n'
    )


@pytest.fixture
def project(
    tmp_path: Path, mongo_url: str, mongo_db: Database[dict[str, Any]]
) -> Iterator[Project]:
    """A monarch project in ``tmp_path`` with an empty ``migrations/`` folder."""
    (tmp_path / "monarch.toml").write_text(project_config(mongo_url, tmp_path))
    (tmp_path / "migrations").mkdir()
    made = Project(tmp_path, mongo_url, mongo_db)
    yield made
    made.stop_spawned()


@pytest.fixture(params=["postgres", "sqlite"])
def sql_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLProject]:
    """The same project on a fresh PostgreSQL database, then on a new SQLite file."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'app.db'}"
    (tmp_path / "monarch.toml").write_text(project_config(url, tmp_path))
    (tmp_path / "migrations").mkdir()
    made = SQLProject(tmp_path, request.param, url)
    yield made
    made.stop_spawned()


AnyProject = Project | SQLProject


@pytest.fixture(params=["mongo", "postgres", "sqlite"])
def any_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyProject]:
    """The same project on MongoDB (FerretDB), PostgreSQL and a SQLite file."""
    if request.param == "mongo":
        yield request.getfixturevalue("project")
        return
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'app.db'}"
    (tmp_path / "monarch.toml").write_text(project_config(url, tmp_path))
    (tmp_path / "migrations").mkdir()
    made = SQLProject(tmp_path, request.param, url)
    yield made
    made.stop_spawned()
