"""The fuzz suite's samples: taken once per session from real producers (see samples.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.fuzz.samples import collect_samples
from tests.servers import MongoServer, MongoTools


@pytest.fixture(scope="session")
def fuzz_samples(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: MongoServer, mongo_tools: MongoTools
) -> Path:
    """Backups monarch made and dumps mongodump made of one small real database, the
    mongo-tools sample dumps, and the SQL, monarch.toml and settings.py seeds."""
    name = f"fuzz_{uuid.uuid4().hex[:12]}"  # workers may share one external server
    try:
        return collect_samples(tmp_path_factory.mktemp("fuzz") / "samples",
                               mongo_url=mongo_server.database_url(name), tools=mongo_tools)
    finally:
        mongo_server.drop_database(name)
