"""Fixtures that give tests real servers.

Servers are session-scoped, so each xdist worker starts its own, and only when a test first
asks for one. Per-test fixtures hand out a fresh database or bucket and remove it afterwards.
A server that cannot start makes the tests that need it error (never skip), with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from tests.servers import (
    MongoServer,
    MongoTools,
    PostgresServer,
    S3Bucket,
    S3Server,
    start_mongo,
    start_postgres,
    start_s3,
)
from tests.servers import mongo as mongo_module
from tests.servers import postgres as postgres_module
from tests.servers import s3 as s3_module
from tests.servers.mongotools import mongo_tools as build_mongo_tools


def pytest_configure(config: pytest.Config) -> None:
    # Any code under test that builds an S3 client finds credentials and a region, without
    # reaching for a real account; real values given by the environment win.
    for name, value in s3_module.DUMMY_CREDENTIALS.items():
        os.environ.setdefault(name, value)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        "servers (started on first use): "
        f"mongo={mongo_module.planned_kind()}, "
        f"postgres={postgres_module.planned_kind()}, "
        f"s3={s3_module.planned_kind()}"
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
def s3_server() -> Iterator[S3Server]:
    """An S3 endpoint for this worker."""
    with start_s3() as server:
        yield server


@pytest.fixture(scope="session")
def mongo_tools() -> MongoTools:
    """Paths of ``mongodump``, ``mongorestore`` and their sample dumps (``.testdata``)."""
    return build_mongo_tools()


@pytest.fixture(scope="session")
def _s3_client(s3_server: S3Server) -> Any:
    return s3_server.client()


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
def s3_bucket(s3_server: S3Server, _s3_client: Any) -> Iterator[S3Bucket]:
    """A fresh bucket with ``.name``, ``.url`` (``s3://NAME/backups``), ``.endpoint_url``,
    ``.client``; emptied and deleted afterwards."""
    bucket = s3_server.create_bucket(_s3_client)
    yield bucket
    bucket.remove()
