"""A user project for each engine, on the servers the suite starts."""

from __future__ import annotations

import pytest

# Loaded here, before pytester's in-process runs: a run forgets the modules first imported in
# it, and a second run would then see other Migration classes than `monarch`'s cached names.
import monarch.engines.mongo
import monarch.engines.postgres
import monarch.engines.sqlite
import monarch.testing  # noqa: F401
from tests.testing.project import UserProject


@pytest.fixture
def engine() -> str:
    """The project's engine; tests parametrize it (``ENGINES``) or take SQLite."""
    return "sqlite"


@pytest.fixture
def user_project(request: pytest.FixtureRequest, engine: str) -> UserProject:
    """A project whose environment ``test`` is a fresh database of ``engine`` (SQLite: a file
    in the project, not made yet)."""
    # The server first: pytester points HOME at its folder, where the cached server builds
    # (~/.cache/monarch) are not.
    url = "sqlite:///test.db" if engine == "sqlite" else request.getfixturevalue(f"{engine}_url")
    return UserProject(request.getfixturevalue("pytester"), engine, url)
