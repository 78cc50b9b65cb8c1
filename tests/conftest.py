"""Fixtures that give tests real servers.

Servers are session-scoped, so each xdist worker starts its own, and only when a test first
asks for one. Per-test fixtures hand out a fresh database or bucket and remove it afterwards.
A server that cannot start makes the tests that need it error (never skip), with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pymongo import MongoClient
from pymongo.database import Database

from tests.servers import (
    MongoServer,
    MongoTools,
    PostgresServer,
    S3Bucket,
    S3Server,
    S3Servers,
    start_mongo,
    start_postgres,
)
from tests.servers import mongo as mongo_module
from tests.servers import postgres as postgres_module
from tests.servers import s3 as s3_module
from tests.servers.mongotools import mongo_tools as build_mongo_tools

# pytester: the test kit's tests (tests/testing) run a user project's own suite with it.
pytest_plugins = ["pytester"]

# The S3 servers every S3 test runs against, one test each: moto and SeaweedFS, or the
# endpoint of $MONARCH_TEST_S3_ENDPOINT alone.
S3_KINDS = s3_module.planned_kinds()


def pytest_configure(config: pytest.Config) -> None:
    # Any code under test that builds an S3 client finds credentials and a region, without
    # reaching for a real account. Real values given by the environment win for an external
    # endpoint; the servers started here know only the test credentials.
    for name, value in s3_module.DUMMY_CREDENTIALS.items():
        if S3_KINDS == ["external"]:
            os.environ.setdefault(name, value)
        else:
            os.environ[name] = value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests (marked ``slow``) first, the rest in their usual order after them.

    With ``-n`` and ``--maxschedchunk=1`` (pyproject's addopts) each worker takes the next test
    as it frees up, so the long ones start at once on both workers and the many short ones
    fill in behind them: both workers finish together instead of one running a kill loop
    alone at the end.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "servers (started on first use): "
        f"mongo={mongo_module.planned_kind()}, "
        f"postgres={postgres_module.planned_kind()}, "
        f"s3={'+'.join(S3_KINDS)}"
    ]


def _unique_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    """A MongoDB-wire server for this worker; see ``MongoServer`` for its capability flags."""
    with start_mongo() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this worker."""
    with start_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def s3_servers() -> Iterator[S3Servers]:
    """This worker's S3 servers by kind, each started on first use, all stopped at the end."""
    with S3Servers() as servers:
        yield servers


@pytest.fixture(params=S3_KINDS)
def s3_server(request: pytest.FixtureRequest, s3_servers: S3Servers) -> S3Server:
    """An S3 endpoint for this worker: a test that uses it runs once per kind of server."""
    return s3_servers.get(request.param)


@pytest.fixture(scope="session")
def mongo_tools() -> MongoTools:
    """Paths of ``mongodump``, ``mongorestore`` and their sample dumps (``.testdata``)."""
    return build_mongo_tools()


@pytest.fixture
def mongo_url(mongo_server: MongoServer) -> Iterator[str]:
    """URL of a database no other test uses, e.g. ``mongodb://127.0.0.1:PORT/t_1a2b...``."""
    name = _unique_name()
    yield mongo_server.database_url(name)
    mongo_server.drop_database(name)


@pytest.fixture
def mongo_db(mongo_url: str) -> Iterator[Database[dict[str, Any]]]:
    """The pymongo ``Database`` at ``mongo_url``."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        yield client.get_default_database()
    finally:
        client.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = _unique_name()
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def s3_bucket_on(
    request: pytest.FixtureRequest, s3_servers: S3Servers
) -> Callable[..., S3Bucket]:
    """``s3_bucket_on(kind, object_lock=False)``: a fresh bucket on the server of ``kind``,
    removed when the test ends.

    For fixtures that choose the server themselves, e.g. parametrized over ``file``,
    ``s3-moto`` and ``s3-seaweedfs`` (see ``store_params``): those cannot ask for the
    parametrized ``s3_bucket``.
    """

    def make(kind: str, *, object_lock: bool = False) -> S3Bucket:
        bucket = s3_servers.bucket(kind, object_lock=object_lock)
        request.addfinalizer(bucket.remove)
        return bucket

    return make


@pytest.fixture
def s3_bucket(s3_server: S3Server, s3_bucket_on: Callable[..., S3Bucket]) -> S3Bucket:
    """A fresh bucket with ``.name``, ``.url`` (``s3://NAME/backups``), ``.endpoint_url``,
    ``.client``, on each S3 server in turn; emptied and deleted afterwards."""
    return s3_bucket_on(s3_server.kind)


@pytest.fixture
def s3_locked_bucket(s3_server: S3Server, s3_bucket_on: Callable[..., S3Bucket]) -> S3Bucket:
    """Like ``s3_bucket``, but created with S3 Object Lock enabled (which turns on versioning):
    an object version put with a retention cannot be deleted until the retention ends.

    Skipped, saying so, on a server that cannot create such a bucket.
    """
    try:
        return s3_bucket_on(s3_server.kind, object_lock=True)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in OBJECT_LOCK_MISSING:
            pytest.skip(f"the {s3_server.kind} S3 server has no Object Lock: {exc}")
        raise


# What servers without Object Lock answer a CreateBucket that asks for it.
OBJECT_LOCK_MISSING = {"NotImplemented", "InvalidRequest", "InvalidArgument"}
