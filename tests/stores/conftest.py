"""The ``store`` fixture: one test suite, run against every backup store.

``backend`` is parametrized over ``local``, ``memory`` and ``s3-<kind>`` for each S3 server (moto's
mock of S3's HTTP API and SeaweedFS, a real S3-compatible server) and
knows, for each, how to open a store with extra options, how many unfinished uploads it holds,
and how to create many objects quickly without going through the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monarch.config import StoreConfig
from monarch.stores import open_store
from monarch.stores.base import Store
from monarch.stores.local import TEMP_PREFIX
from monarch.stores.memory import MemoryStore
from tests.servers import S3Bucket, S3Server, S3Servers
from tests.servers.s3 import store_params
from tests.stores.moto_process import MotoProcess

MiB = 1 << 20


@dataclass
class Backend:
    """A store under test, plus what the suite needs to look behind it."""

    kind: str
    url: str
    pending: Callable[[], int]
    """How many unfinished uploads the backend holds (temp files, multipart uploads)."""
    seed: Callable[[dict[str, bytes]], None]
    """Create objects directly, bypassing the store (fast set-up for big listings)."""
    options: dict[str, str] = field(default_factory=dict)
    server_kind: str = ""
    """For S3: ``moto``, ``seaweedfs`` or ``external``."""

    def open(self, **options: str) -> Store:
        """Open a store on this location, with ``options`` added to the defaults."""
        return open_store(StoreConfig(self.url, {**self.options, **options}))


@pytest.fixture
def local_backend(tmp_path: Path) -> Backend:
    folder = tmp_path / "backups"

    def pending() -> int:
        return sum(1 for p in folder.rglob(f"{TEMP_PREFIX}*")) if folder.exists() else 0

    def seed(objects: dict[str, bytes]) -> None:
        for key, data in objects.items():
            path = folder / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return Backend("local", f"file://{folder}", pending, seed)


@pytest.fixture
def memory_backend() -> Iterator[Backend]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    url = f"memory://{name}"
    probe = MemoryStore(StoreConfig(url))

    def seed(objects: dict[str, bytes]) -> None:
        for key, data in objects.items():
            with probe.writer(key) as upload:
                upload.write(data)

    yield Backend("memory", url, probe.pending, seed)
    MemoryStore.reset(name)


def s3_backend(server: S3Server, s3_bucket: S3Bucket) -> Backend:
    client = s3_bucket.client
    prefix = s3_bucket.url.split("/", 3)[3] + "/"

    def pending() -> int:
        answer = client.list_multipart_uploads(Bucket=s3_bucket.name, Prefix=prefix)
        return len(answer.get("Uploads", []))

    def seed(objects: dict[str, bytes]) -> None:
        def put(item: tuple[str, bytes]) -> None:
            client.put_object(Bucket=s3_bucket.name, Key=prefix + item[0], Body=item[1])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, objects.items()))

    options = {"endpoint_url": s3_bucket.endpoint_url, "region": server.region}
    return Backend("s3", s3_bucket.url, pending, seed, options, server.kind)


@pytest.fixture(params=store_params("local", "memory"))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each store in turn, S3 on each server."""
    if request.param.startswith("s3-"):
        kind = request.param[3:]
        servers: S3Servers = request.getfixturevalue("s3_servers")
        return s3_backend(servers.get(kind), request.getfixturevalue("s3_bucket_on")(kind))
    found: Backend = request.getfixturevalue(f"{request.param}_backend")
    return found


@pytest.fixture
def store(backend: Backend) -> Store:
    """A store of each kind, empty, with default options."""
    return backend.open()


@pytest.fixture
def moto_process() -> Iterator[MotoProcess]:
    """A moto server of this test's own, in a child process."""
    with MotoProcess() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., None]:
    """Control the AWS settings boto reads from the environment: ``aws_env(AWS_X="...")``.

    Shared config files and the instance metadata service are switched off, so only what the
    test sets counts; a value of None removes the variable.
    """
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)

    def setenv(**values: Any) -> None:
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))

    return setenv
