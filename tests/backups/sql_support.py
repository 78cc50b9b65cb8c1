"""A throwaway project for PostgreSQL and SQLite backup tests: ``development`` (the source),
``staging`` and ``production`` (protected) on other databases, and a SQLite pair beside them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from monarch.config import Config, load_config
from monarch.stores import open_store
from monarch.stores.base import Store
from tests.backups.conftest import CliResult, environ
from tests.servers import PostgresServer, S3Bucket
from tests.servers.s3 import store_params


@dataclass
class SQLProject:
    """Environments: ``development``, ``staging``, ``production`` (protected), ``twin`` (the
    development database under another URL) on PostgreSQL; ``lite`` and ``lite_copy`` on
    SQLite files ``lite.db`` and ``lite_copy.db``."""

    root: Path
    urls: dict[str, str]
    bin_dir: Path
    store_kind: str = "file"
    extra: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / "monarch.toml"

    def config(self) -> Config:
        return load_config(self.config_path)

    def store(self) -> Store:
        return open_store(self.config().backups)

    def archive_path(self, name: str) -> Path:
        """The archive file of backup ``name`` (local store only)."""
        key = self.config().backups.url.removeprefix("file://")
        (path,) = Path(key).glob(f"{name}.archive*")
        return path

    def lite(self, name: str = "lite") -> Path:
        return self.root / f"{name}.db"

    def process(self, *args: str, timeout: float = 120) -> CliResult:
        """Run ``python -m monarch`` as a separate process."""
        done = subprocess.run(
            [sys.executable, "-m", "monarch", "--config", str(self.config_path), *args],
            cwd=self.root, env=environ(), capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=timeout, check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)


def _write(root: Path, urls: dict[str, str], backups: dict[str, str]) -> None:
    lines = ["[backups]"] + [f'{k} = "{v}"' for k, v in backups.items()]
    for name, url in urls.items():
        lines += ["", f"[environments.{name}]", f'url = "{url}"']
        if name == "production":
            lines.append("protected = true")
    (root / "monarch.toml").write_text("\n".join(lines) + "\n")


def _project(
    request: pytest.FixtureRequest, root: Path, server: PostgresServer, kind: str
) -> Iterator[SQLProject]:
    names = {env: f"t_{uuid.uuid4().hex[:12]}" for env in ("development", "staging",
                                                            "production")}
    urls = {env: server.create_database(db) for env, db in names.items()}
    # The same database through "localhost" instead of 127.0.0.1.
    urls["twin"] = urls["development"].replace("127.0.0.1", "localhost")
    urls["lite"] = "sqlite:///lite.db"
    urls["lite_copy"] = "sqlite:///lite_copy.db"
    if kind == "file":
        backups = {"url": f"file://{root / 'backups'}"}
    else:
        bucket: S3Bucket = request.getfixturevalue("s3_bucket_on")(kind[3:])
        backups = {"url": bucket.url, "endpoint_url": bucket.endpoint_url,
                   "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    _write(root, urls, backups)
    yield SQLProject(root, urls, server.bin_dir, kind.partition("-")[0])
    for db in names.values():
        server.drop_database(db)


@pytest.fixture(name="sql_project", params=store_params("file"))
def sql_project_fixture(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer
) -> Iterator[SQLProject]:
    """The project with its backups in a local folder, then in an S3 bucket."""
    yield from _project(request, tmp_path, postgres_server, request.param)


@pytest.fixture(name="local_project")
def local_project_fixture(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer
) -> Iterator[SQLProject]:
    """The project with its backups in a local folder (tests that read or damage its files)."""
    yield from _project(request, tmp_path, postgres_server, "file")


def flip_byte(path: Path, at: float = 0.5) -> None:
    """Invert one byte of ``path``, ``at`` of the way through it."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def bulk_fill(url: str, rows: int) -> None:
    """Two plain tables with ``rows`` rows between them (for timing and kill tests)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, body text);"
            "CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE, score float8)"
        )
        conn.execute(
            "INSERT INTO events SELECT i, now() - i * interval '1 second', 'kind ' || (i %% 17), "
            "md5(i::text) || repeat('x', i %% 50) FROM generate_series(1, %s) i", (rows,))
        conn.execute(
            "INSERT INTO users SELECT i, 'u' || i || '@example.com', i / 7.0 "
            "FROM generate_series(1, %s) i", (max(1, rows // 10),))
        conn.execute("ANALYZE")
