"""A throwaway monarch project for backup tests: environments on the test's own database, and a
backup store that is a local folder or (``any_project``) an S3 bucket on the test S3 server."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from monarch.cli import main
from monarch.config import Config, load_config
from monarch.stores import open_store
from monarch.stores.base import Store
from tests.servers import S3Bucket
from tests.servers.s3 import store_params

ROOT = Path(__file__).resolve().parents[2]
LISTED_DAY = r"(?:[A-Z][a-z]{2} \d{1,2}|\d{4}-\d\d-\d\d)"
"""A day as ``list_backups`` shows when a backup was checked: ``Dec 2`` this year, else ISO."""


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(config_path: Path, *args: str, input: str | None = None) -> CliResult:
    """Run ``monarch --config CONFIG_PATH ARGS`` in this process, through its real entry point."""
    logger = logging.getLogger("monarch")
    handlers = list(logger.handlers)
    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, _):
        try:
            main(["--config", str(config_path), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            logger.handlers[:] = handlers  # the CLI's handler must not outlive its stream
        sys.stdout.flush()
        sys.stderr.flush()
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


@dataclass
class Project:
    """A project folder whose ``development`` (unprotected) and ``production`` (protected)
    environments are both the test's own database."""

    root: Path
    url: str
    db: Database[dict[str, Any]]
    store_kind: str = "file"

    @property
    def config_path(self) -> Path:
        return self.root / "monarch.toml"

    def config(self) -> Config:
        return load_config(self.config_path)

    def store(self) -> Store:
        return open_store(self.config().backups)

    def store_keys(self) -> list[str]:
        """Every committed object in the store."""
        return [o.key for o in self.store().list()]

    def cli(self, *args: str, input: str | None = None) -> CliResult:
        """Run ``monarch`` in this process, through its real entry point."""
        return run_cli(self.config_path, *args, input=input)

    def process(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``python -m monarch`` as a separate process."""
        return subprocess.run(
            [sys.executable, "-m", "monarch", "--config", str(self.config_path), *args],
            cwd=self.root, env=environ(), capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=timeout, check=False,
        )

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "monarch", "--config", str(self.config_path), *args],
            cwd=self.root, env=environ(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )


def environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MONARCH_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT)) if p)
    return env


def write_config(root: Path, url: str, backups: dict[str, str], extra: str = "") -> None:
    lines = ["[backups]"] + [f'{k} = "{v}"' for k, v in backups.items()]
    lines += [
        "", "[environments.development]", f'url = "{url}"',
        "", "[environments.production]", f'url = "{url}"', "protected = true", "",
    ]
    (root / "monarch.toml").write_text("\n".join(lines) + extra)


def seed_shop(db: Database[dict[str, Any]], users: int = 300, orders: int = 500) -> None:
    """A small shop: users (unique email), orders (compound index), logs, an empty collection."""
    rng = random.Random(7)
    db.users.insert_many(
        {"_id": i, "name": f"user {i}", "email": f"user{i}@real.example.com",
         "active": i % 3 != 0, "score": rng.random(), "tags": ["a", "b"][: i % 3]}
        for i in range(users)
    )
    db.users.create_index([("email", ASCENDING)], unique=True, name="email_1")
    db.orders.insert_many(
        {"user": i % max(users, 1), "total": round(rng.uniform(1, 500), 2),
         "lines": [{"sku": f"sku-{j}", "qty": j + 1} for j in range(i % 4)]}
        for i in range(orders)
    )
    db.orders.create_index([("user", ASCENDING), ("total", DESCENDING)], name="user_total")
    db.logs.insert_many({"line": f"log line {i}", "level": "info"} for i in range(200))
    db.create_collection("empty")


@pytest.fixture
def project(tmp_path: Path, mongo_url: str, mongo_db: Database[dict[str, Any]]) -> Project:
    """A project with a local backup folder and an empty database."""
    write_config(tmp_path, mongo_url, {"url": f"file://{tmp_path / 'backups'}"})
    (tmp_path / "querysets").mkdir()
    return Project(tmp_path, mongo_url, mongo_db)


@pytest.fixture(params=store_params("file"))
def any_project(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mongo_url: str,
    mongo_db: Database[dict[str, Any]],
) -> Iterator[Project]:
    """The same project with its backups in a local folder, then in a bucket on each S3 server."""
    if request.param == "file":
        backups = {"url": f"file://{tmp_path / 'backups'}"}
    else:
        bucket: S3Bucket = request.getfixturevalue("s3_bucket_on")(request.param[3:])
        backups = {"url": bucket.url, "endpoint_url": bucket.endpoint_url,
                   "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    write_config(tmp_path, mongo_url, backups)
    (tmp_path / "querysets").mkdir()
    yield Project(tmp_path, mongo_url, mongo_db, request.param.partition("-")[0])


@pytest.fixture
def shop(project: Project) -> Project:
    """``project`` with the small shop database in it."""
    seed_shop(project.db)
    return project
