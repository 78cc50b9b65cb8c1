"""The pytest side of the test kit: options, the ``monarch`` marker, and the fixtures.

Off until a project enables it (``-p monarch.testing``, or ``pytest_plugins =
["monarch.testing"]`` in its top conftest.py); monarch registers no entry point, so a suite
that does not ask for it never loads it. Settings, the first found wins:

- environment: the marker's ``environment=``, ``--monarch-environment``, ``monarch_environment``
  (ini);
- configuration: ``--monarch-config``, ``monarch_config`` (ini, relative to the ini file),
  else found as the ``monarch`` command finds it (``$MONARCH_CONFIG``, then ``monarch.toml``
  in the folder pytest runs in or any folder above it);
- seed: the marker's ``backup=`` / ``query_set=``, else ``monarch_backup`` /
  ``monarch_query_set`` (ini), else none;
- ``--monarch-keep`` keeps every scratch database (for looking at one after a failure).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monarch.config import Config, load_config
from monarch.errors import MonarchError
from monarch.testing.database import ScratchDatabase, scratch_database

MARKER = (
    "monarch(environment=None, backup=None, query_set=None): the scratch database this "
    "test's monarch_db is made on (environment), and what seeds it: a backup's name or "
    "latest:ENV, or a query set copying the environment's own database"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("monarch", "monarch's test kit (monarch.testing)")
    group.addoption(
        "--monarch-environment",
        metavar="ENV",
        help="the environment of monarch.toml whose server gives each test a scratch database "
        "(default: the monarch_environment ini setting)",
    )
    group.addoption(
        "--monarch-config",
        metavar="PATH",
        help="monarch.toml to read (default: the monarch_config ini setting, else found as "
        "the monarch command finds it)",
    )
    group.addoption(
        "--monarch-keep",
        action="store_true",
        help="keep the scratch databases instead of removing them, to look at them afterwards",
    )
    parser.addini("monarch_environment", "the environment scratch databases are made on")
    parser.addini("monarch_config", "monarch.toml to read, relative to this file", type="paths")
    parser.addini("monarch_backup", "the backup seeding each scratch database (NAME or "
                  "latest:ENV)")
    parser.addini("monarch_query_set", "the query set copying the environment's database "
                  "into each scratch database")


KEPT = pytest.StashKey[list[str]]()
"""The scratch databases ``--monarch-keep`` kept, said in the run's summary."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.stash[KEPT] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    kept = config.stash.get(KEPT, [])
    if kept:
        terminalreporter.write_sep("-", f"monarch: {len(kept)} scratch database(s) kept")
        for line in kept:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def monarch_config(pytestconfig: pytest.Config) -> Config:
    """The project's monarch configuration, loaded once for the session."""
    explicit = pytestconfig.getoption("monarch_config")
    if explicit is None:
        listed = pytestconfig.getini("monarch_config")
        explicit = str(listed[0]) if listed else None
    try:
        return load_config(explicit, start=pytestconfig.invocation_params.dir)
    except MonarchError as exc:
        pytest.fail(said(exc), pytrace=False)


@pytest.fixture
def monarch_db(request: pytest.FixtureRequest, monarch_config: Config) -> Iterator[
        ScratchDatabase]:
    """A scratch database of the chosen environment's engine, seeded as configured, removed
    when the test ends (kept with ``--monarch-keep``)."""
    settings = request.config
    marked = _marked(request.node.get_closest_marker("monarch"))
    environment = (marked.get("environment") or settings.getoption("monarch_environment")
                   or settings.getini("monarch_environment"))
    if not environment:
        pytest.fail("monarch_db needs an environment: set monarch_environment in pytest.ini "
                    "(or pyproject.toml), pass --monarch-environment ENV, or mark the test "
                    "@pytest.mark.monarch(environment=...)", pytrace=False)
    seeded = {"backup", "query_set"} & set(marked)
    keep = settings.getoption("monarch_keep")
    try:
        with scratch_database(
            monarch_config,
            environment,
            backup=marked.get("backup") if seeded else settings.getini("monarch_backup") or None,
            query_set=marked.get("query_set") if seeded
            else settings.getini("monarch_query_set") or None,
            keep=keep,
        ) as db:
            if keep:
                settings.stash[KEPT].append(f"{request.node.nodeid}: {db.environment.display_url}")
            yield db
    except MonarchError as exc:  # setting up or removing it: said as the command says it
        pytest.fail(said(exc), pytrace=False)


def _marked(marker: pytest.Mark | None) -> dict[str, str | None]:
    """The ``monarch`` marker's settings (``backup=None`` too: it turns the ini's seed off);
    anything else it is given fails the test."""
    if marker is None:
        return {}
    unknown = sorted(set(marker.kwargs) - {"environment", "backup", "query_set"})
    if unknown or marker.args:
        wrong = ", ".join([*map(repr, marker.args), *(f"{k}=" for k in unknown)])
        pytest.fail(f"@pytest.mark.monarch takes environment=, backup= and query_set= only, "
                    f"not {wrong}", pytrace=False)
    return {key: None if value is None else str(value) for key, value in marker.kwargs.items()}


def said(exc: MonarchError) -> str:
    """A monarch error as the ``monarch`` command says it: the message and what to try."""
    return f"Error: {exc}" + (f"\nTry: {exc.hint}" if exc.hint else "")
