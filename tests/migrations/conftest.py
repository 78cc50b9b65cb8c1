"""A throwaway monarch project whose environments point at a fresh database of the test server."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pymongo.database import Database

from monarch.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Project:
    """A project folder with ``development`` (unprotected) and ``production`` (protected)
    environments, both on the test's own database."""

    root: Path
    url: str
    db: Database[dict[str, Any]]
    spawned: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    def config(self) -> Config:
        return load_config(self.root / "monarch.toml")

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
        body = [f"from monarch import MongoMigration\n{header}\n\nclass M(MongoMigration):"]
        if attrs:
            body.append(textwrap.indent(textwrap.dedent(attrs).strip(), "    "))
        body.append("    def run(self):")
        body.append(textwrap.indent(textwrap.dedent(run).strip() or "pass", "        "))
        if rollback is not None:
            body.append("    def rollback(self):")
            body.append(textwrap.indent(textwrap.dedent(rollback).strip(), "        "))
        text = "\n".join(body) + "\n"
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

    def cli(self, *args: str, input: str | None = None, tty: bool = False) -> CliResult:
        """Run ``monarch`` in this process, through its real entry point."""
        from monarch.cli import main

        logger = logging.getLogger("monarch")
        handlers = list(logger.handlers)
        runner = CliRunner()
        with runner.isolation(input=input) as (out, err, _):
            if tty:
                sys.stdin.isatty = lambda: True  # type: ignore[method-assign]
            try:
                main(["--config", str(self.root / "monarch.toml"), *args])
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
            finally:
                # The CLI installs a log handler on this stream; it must not outlive it.
                logger.handlers[:] = handlers
            sys.stdout.flush()
            sys.stderr.flush()
            return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    def process(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m monarch`` as a separate process."""
        return subprocess.run(
            [sys.executable, "-m", "monarch", *args],
            cwd=self.root,
            env=self.environ(env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``python -m monarch``; the fixture kills it at teardown if it still runs."""
        process = subprocess.Popen(
            [sys.executable, "-m", "monarch", *args],
            cwd=self.root,
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.spawned.append(process)
        return process

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "MONARCH_CONFIG"}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
        )
        env.update(extra or {})
        return env


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
    for process in made.spawned:
        if process.poll() is None:
            process.kill()
        process.communicate()
