"""Fixtures for the archive layer's tests: the mongo-tools module's real sample dumps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.golang import download_module
from tests.servers.mongotools import MODULE, VERSION


@pytest.fixture(scope="session")
def mongo_tools_source() -> Path:
    """The mongo-tools module's source (read-only), fetched with ``go mod download``.

    Without Go this errors rather than skips: the samples are how we know we read what real
    mongodump releases write.
    """
    return download_module(MODULE, VERSION)


@pytest.fixture(scope="session")
def sample_testdata(mongo_tools_source: Path) -> Path:
    """``mongorestore/testdata``: archives and directory dumps written by real mongodump."""
    return mongo_tools_source / "mongorestore" / "testdata"
