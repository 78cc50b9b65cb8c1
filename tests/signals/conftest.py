"""A bench for the signal suite: a project whose environments ``dev``, ``alt`` and ``staging``
are three databases of one engine (MongoDB-wire, PostgreSQL or SQLite), with its backups in a
local folder or an S3 bucket, and what the suite needs to judge a trial: each database's
contents as one hash, what a restore leaves behind, what a store leaves behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pymongo import MongoClient

from monarch.config import Config, load_config
from monarch.engines.postgres.swap import leftover_prefix
from monarch.engines.sqlite.files import SIDECAR_SUFFIX
from monarch.stores import open_store
from monarch.stores.base import Store
from monarch.stores.local import TEMP_PREFIX
from tests.backups.conftest import environ
from tests.backups.restore_support import leftovers as mongo_leftovers
from tests.backups.restore_support import snapshot
from tests.engines.pg_helpers import contents as pg_contents
from tests.engines.pg_helpers import databases
from tests.engines.sqlite_helpers import contents as sqlite_contents
from tests.servers import MongoServer, PostgresServer, S3Bucket
from tests.servers.s3 import planned_kind

ENVIRONMENTS = ("dev", "alt", "staging")
ROWS = {"mongo": 1_500, "postgres": 40_000, "sqlite": 30_000}


def digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


class MongoKit:
    """Databases on the MongoDB-wire test server."""

    def __init__(self, server: MongoServer) -> None:
        self.server = server
        base = f"t_{uuid.uuid4().hex[:10]}"
        self.names = {env: f"{base}_{env}" for env in ENVIRONMENTS}
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            server.uri, serverSelectionTimeoutMS=5000
        )

    def url(self, env: str) -> str:
        return self.server.database_url(self.names[env])

    def fill(self, env: str, version: int) -> None:
        db = self.client[self.names[env]]
        for name in db.list_collection_names():
            db.drop_collection(name)
        rows = ROWS["mongo"]
        db.items.insert_many(
            {"_id": i, "v": version, "body": "b" * (200 + i % 700)} for i in range(rows)
        )
        db.items.create_index("v", name="v_1")
        db[f"only_v{version}"].insert_many({"n": i} for i in range(50 + version))

    def state(self, env: str, *, app_only: bool = False) -> str:
        found = snapshot(self.client[self.names[env]])
        if app_only:
            found = {k: v for k, v in found.items() if not k.startswith("monarch_")}
        return digest(found)

    def leftovers(self, env: str) -> list[str]:
        return mongo_leftovers(self.client[self.names[env]])

    def describe(self, env: str) -> dict[str, int]:
        """Collections and their document counts (to say what a mix is made of)."""
        db = self.client[self.names[env]]
        return {name: db[name].count_documents({}) for name in sorted(db.list_collection_names())}

    def close(self) -> None:
        for name in self.names.values():
            self.server.drop_database(name)
        self.client.close()


class PostgresKit:
    """Databases on the PostgreSQL test server."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        base = f"t_{uuid.uuid4().hex[:10]}"
        self.names = {env: f"{base}_{env}" for env in ENVIRONMENTS}
        self.urls = {env: server.create_database(name) for env, name in self.names.items()}

    def url(self, env: str) -> str:
        return self.urls[env]

    def fill(self, env: str, version: int) -> None:
        with psycopg.connect(self.urls[env], autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS items, only_v1, only_v2, only_v3")
            conn.execute(
                "CREATE TABLE items (id int PRIMARY KEY, v int, body text);"
                f"CREATE TABLE only_v{version} (n int);"
            )
            conn.execute(
                "INSERT INTO items SELECT i, %s, md5(i::text) || repeat('b', i %% 60) "
                "FROM generate_series(1, %s) i",
                (version, ROWS["postgres"]),
            )
            conn.execute("CREATE INDEX items_v ON items (v)")

    def state(self, env: str, *, app_only: bool = False) -> str:
        found = pg_contents(self.urls[env])
        if app_only:
            found = {k: v for k, v in found.items() if ".monarch_" not in k}
        return digest(found)

    def leftovers(self, env: str) -> list[str]:
        prefix = leftover_prefix(self.names[env])
        return sorted(n for n in databases(self.server.uri) if n.startswith(prefix))

    def close(self) -> None:
        for env, name in self.names.items():
            for leftover in self.leftovers(env):
                self.server.drop_database(leftover)
            self.server.drop_database(name)


class SQLiteKit:
    """Database files in the project's folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, env: str) -> Path:
        return self.root / f"{env}.db"

    def url(self, env: str) -> str:
        return f"sqlite:///{self.path(env)}"

    def fill(self, env: str, version: int) -> None:
        self.path(env).unlink(missing_ok=True)
        conn = sqlite3.connect(self.path(env), isolation_level=None)
        try:
            conn.executescript(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER, body TEXT);"
                f"CREATE TABLE only_v{version} (n INTEGER);"
                "CREATE INDEX items_v ON items (v);"
            )
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO items VALUES (?, ?, ?)",
                ((i, version, f"{i:x}" + "b" * (i % 60)) for i in range(ROWS["sqlite"])),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()

    def state(self, env: str, *, app_only: bool = False) -> str:
        found = sqlite_contents(self.path(env))
        if app_only:
            found = {k: v for k, v in found.items() if not k.startswith("monarch_")}
            found["schema"] = [
                row
                for row in found["schema"]  # type: ignore[attr-defined]
                if "monarch_" not in row[1]
            ]
        return digest(found)

    def leftovers(self, env: str) -> list[str]:
        folder = self.path(env).with_name(self.path(env).name + SIDECAR_SUFFIX)
        return sorted(p.name for p in folder.glob("restore-*")) if folder.exists() else []

    def close(self) -> None:
        pass


Kit = MongoKit | PostgresKit | SQLiteKit


@dataclass
class Bench:
    """A project on one engine and one store; see the module doc."""

    engine: str
    store_kind: str
    root: Path
    kit: Kit
    logs: list[Path] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / "monarch.toml"

    def config(self) -> Config:
        return load_config(self.config_path)

    def store(self) -> Store:
        return open_store(self.config().backups)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``python -m monarch ARGS`` (stderr kept in a file: see :meth:`stderr`)."""
        log = Path(tempfile.mkstemp(prefix="stderr-", dir=self.root)[1])
        self.logs.append(log)
        with log.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "monarch", "--config", str(self.config_path), *args],
                cwd=self.root,
                env=environ(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        process.log = log  # type: ignore[attr-defined]
        return process

    def run(self, *args: str) -> tuple[int, str]:
        """Run ``python -m monarch ARGS`` to the end: its exit code and stderr."""
        process = self.spawn(*args)
        return process.wait(timeout=180), stderr(process)

    def store_leftovers(self) -> int:
        """Unfinished uploads: ``.tmp-*`` files of a local store, or pending S3 multipart
        uploads (which this aborts, as ``prune`` would)."""
        if self.store_kind == "file":
            folder = self.root / "backups"
            if not folder.exists():
                return 0
            return len([p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)])
        return self.store().cleanup(0)

    def age_store_leftovers(self) -> None:
        """Make a local store's temporary files look old, so that cleanup may remove them."""
        folder = self.root / "backups"
        if self.store_kind == "file" and folder.exists():
            then = time.time() - 7200
            for entry in folder.iterdir():
                os.utime(entry, (then, then))


def lingering_tools(bench: Bench) -> list[str]:
    """``pg_dump`` / ``pg_restore`` processes still working on this bench's databases (the
    database is named in their argv or, as monarch passes it, in their environment)."""
    names = list(getattr(bench.kit, "names", {}).values())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        tool = Path(argv.split(b"\0")[0].decode(errors="replace")).name
        text = (argv + environment).decode(errors="replace")
        if tool in ("pg_dump", "pg_restore") and any(name in text for name in names):
            found.append(f"{entry.name}: {tool}")
    return found


def stderr(process: subprocess.Popen[bytes]) -> str:
    log: Path = process.log  # type: ignore[attr-defined]
    return log.read_text(errors="replace")


def catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has installed a SIGTERM handler (monarch's: it is ready)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def wait_until_ready(process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    """Wait until monarch in ``process`` handles signals (or exits); return when that was."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and not catches_sigterm(process.pid):
        if time.monotonic() > deadline:
            raise AssertionError("monarch never installed its signal handlers")
        time.sleep(0.002)
    return time.monotonic()


@pytest.fixture
def make_bench(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Bench]]:
    """``make_bench(engine, store_kind)``: a bench in ``tmp_path``; removed at the end."""
    made: list[Bench] = []

    def make(engine: str, store_kind: str) -> Bench:
        kit: Kit
        if engine == "mongo":
            kit = MongoKit(request.getfixturevalue("mongo_server"))
        elif engine == "postgres":
            kit = PostgresKit(request.getfixturevalue("postgres_server"))
        else:
            kit = SQLiteKit(tmp_path)
        if store_kind == "file":
            backups = {"url": f"file://{tmp_path / 'backups'}"}
        else:
            # On the first S3 server only (moto, unless an external one is given): the
            # trials are slow, and what they test is monarch's side of an interruption.
            bucket: S3Bucket = request.getfixturevalue("s3_bucket_on")(planned_kind())
            backups = {
                "url": bucket.url,
                "endpoint_url": bucket.endpoint_url,
                "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            }
        lines = ["[backups]"] + [f'{k} = "{v}"' for k, v in backups.items()]
        for env in ENVIRONMENTS:
            lines += ["", f"[environments.{env}]", f'url = "{kit.url(env)}"']
        (tmp_path / "monarch.toml").write_text("\n".join(lines) + "\n")
        (tmp_path / "migrations").mkdir(exist_ok=True)
        (tmp_path / "querysets").mkdir(exist_ok=True)
        bench = Bench(engine, store_kind, tmp_path, kit)
        made.append(bench)
        return bench

    yield make
    for bench in made:
        bench.kit.close()
