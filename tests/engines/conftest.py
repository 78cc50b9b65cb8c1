"""Fixtures for the engine tests: environments and engines over real servers and real files.

``kit`` runs a test once per engine (PostgreSQL, SQLite, MongoDB) on a fresh database; only the
servers a selected test needs are started. ``password_server`` is a PostgreSQL cluster of its own
that, unlike the shared one (trust authentication), checks passwords.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monarch.config import Environment, config_from_dict
from monarch.engines import engine_for
from monarch.engines.base import Engine
from tests.servers.ports import free_port
from tests.servers.postgres import SERVER_USER, find_bin_dir

REPO = Path(__file__).resolve().parents[2]


def environment(url: str, name: str = "test", root: Path | None = None) -> Environment:
    """The environment a monarch.toml with this URL would give."""
    data = {"environments": {name: {"url": url}}}
    return config_from_dict(data, None, os.environ, root=root or Path("/")).environment(name)


@dataclass
class Kit:
    """One engine kind on one fresh database: ``make()`` gives a new engine for it each time."""

    kind: str
    url: str
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def make(self) -> Any:
        engine = engine_for(environment(self.url))
        self.cleanup.append(engine.close)
        return engine


@pytest.fixture(params=["postgres", "sqlite", "mongo"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    """A fresh database of each engine in turn."""
    kind = request.param
    if kind == "postgres":
        url = request.getfixturevalue("postgres_url")
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue("mongo_url")
    made = Kit(kind, url)
    yield made
    for close in reversed(made.cleanup):
        close()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Any]:
    """A PostgresEngine on a fresh database."""
    engine = engine_for(environment(postgres_url))
    yield engine
    engine.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


def run_worker(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``python -m tests.engines._worker ARGS`` in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engines._worker", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


@dataclass
class PasswordServer:
    """A PostgreSQL cluster with scram-sha-256 authentication for everyone, TCP included."""

    host: str
    port: int
    user: str
    password: str
    bin_dir: Path

    def url(self, password: str | None = None, database: str = "postgres") -> str:
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{database}"


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def password_server() -> Iterator[PasswordServer]:
    """A throwaway cluster that checks passwords (the shared one trusts everyone)."""
    bin_dir = find_bin_dir()
    workdir = Path(tempfile.mkdtemp(prefix="monarch-pgpw-", dir="/tmp"))
    password = "s3cret-Pw-for-tests"
    if os.geteuid() == 0:
        shutil.chown(workdir, SERVER_USER, SERVER_USER)
    pwfile = workdir / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, SERVER_USER, SERVER_USER)
    data = workdir / "data"
    port = free_port()
    flags = ["-A", "scram-sha-256", "-U", SERVER_USER, "--pwfile", str(pwfile), "--no-sync"]
    subprocess.run(
        _as_server_user([str(bin_dir / "initdb"), "-D", str(data), *flags]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log")]
    subprocess.run(
        _as_server_user([*ctl, "-o", options, "-w", "-t", "30", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield PasswordServer("127.0.0.1", port, SERVER_USER, password, bin_dir)
    finally:
        subprocess.run(
            _as_server_user([*ctl, "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


_opened: list[Engine] = []


def new_engine(url: str) -> Engine:
    """An engine for ``url``, closed after the test that made it (a leaked connection is a
    ResourceWarning, which the test configuration turns into a failure)."""
    engine = engine_for(environment(url))
    _opened.append(engine)
    return engine


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()
