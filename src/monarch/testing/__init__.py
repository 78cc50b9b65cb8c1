"""monarch's test kit for a project's own test suite: a pytest plugin, off until enabled.

Enable it in the project's top ``conftest.py``::

    pytest_plugins = ["monarch.testing"]

(or run ``pytest -p monarch.testing``), name the environment whose server gives each test a
scratch database (``monarch_environment = test`` in pytest.ini), and write tests::

    from monarch.testing import assert_rollbacks_restore

    def test_rollbacks_restore_the_data(monarch_db):
        assert_rollbacks_restore(monarch_db)

See docs/testing.md. (PYTEST_DONT_REWRITE: the kit asserts nothing with ``assert``; without
this, importing it before pytest loads it as a plugin would warn.)
"""

from __future__ import annotations

from monarch.testing.database import ScratchDatabase, scratch_database
from monarch.testing.plugin import (
    monarch_config,
    monarch_db,
    pytest_addoption,
    pytest_configure,
    pytest_terminal_summary,
)
from monarch.testing.rollbacks import (
    Difference,
    RollbackCheck,
    RollbackReport,
    assert_rollbacks_restore,
    check_rollbacks,
)

__all__ = [
    "Difference",
    "RollbackCheck",
    "RollbackReport",
    "ScratchDatabase",
    "assert_rollbacks_restore",
    "check_rollbacks",
    "monarch_config",
    "monarch_db",
    "pytest_addoption",
    "pytest_configure",
    "pytest_terminal_summary",
    "scratch_database",
]
