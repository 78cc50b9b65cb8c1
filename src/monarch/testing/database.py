"""A scratch database for one test: made on an environment's server, seeded, removed afterwards.

:func:`scratch_database` is what the ``monarch_db`` fixture uses, and works outside pytest too::

    with scratch_database(config, "test", backup="latest:production") as db:
        db.migrate()
        assert db.inventory()["orders"] == 120

The scratch database comes from :mod:`monarch.backups.scratch` (a name that never already
exists, removed on exit, also after a failure or an interrupt; leftovers of killed runs are
removed by the next run). The :class:`ScratchDatabase` it yields carries a configuration whose
only environment is the scratch database, under the environment's own name: whatever a test
does with it through monarch's API cannot reach the environment's real database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from monarch.api.backups import copy_db, list_backups, restore
from monarch.api.migrations import list_migrations, migrate, migrate_one, rollback
from monarch.backups.scratch import scratch
from monarch.engines import engine_for
from monarch.errors import UsageError
from monarch.migrations.discovery import MigrationFile, discover

if TYPE_CHECKING:
    from monarch.config import Config, Environment
    from monarch.engines.base import Engine, Fingerprint
    from monarch.migrations.progress import Reporter
    from monarch.migrations.results import RunResult

LATEST = "latest:"
"""A backup seed ``latest:ENV``: the newest complete backup of environment ENV in the store."""

_SOURCE = "monarch-testing-source"
"""The name the environment itself goes by while a query set copies it into the scratch
database (two names are needed for the copy; the scratch one keeps the environment's)."""


@dataclass(repr=False)
class ScratchDatabase:
    """One scratch database, made for a test and removed after it.

    ``config``: the project's configuration with one environment, the scratch database, named
    ``name`` (the environment it was made on): pass ``(config, name)`` to any monarch function.
    ``environment``: that environment. ``origin``: the configured environment it was made on.
    The methods run monarch's own commands on it; ``engine`` is opened on first use and closed
    with the database.
    """

    config: Config
    environment: Environment
    origin: Environment
    reporter: Reporter | None = None
    _engine: Engine | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"<ScratchDatabase {self.database} (a scratch database of {self.name!r})>"

    @property
    def name(self) -> str:
        """The environment name the scratch database goes by in :attr:`config`."""
        return self.environment.name

    @property
    def database(self) -> str:
        """The scratch database's name (a SQLite scratch database: its file)."""
        return self.environment.database

    @property
    def engine(self) -> Engine:
        """The scratch database's engine, connected on first use (closed by :meth:`close`)."""
        if self._engine is None:
            self._engine = engine_for(self.environment)
        return self._engine

    def context(self) -> dict[str, Any]:
        """What migrations get (``db`` and ``client`` for MongoDB, ``conn`` for PostgreSQL and
        SQLite), for a test to put data in or read it."""
        return self.engine.migration_context()

    def inventory(self) -> dict[str, int]:
        """Each collection's (table's) documents (rows) now, monarch's own left out (as
        :meth:`fingerprint` counts them: it reads all the data, sized for tests)."""
        return {name: found.count for name, found in self.fingerprint().items()}

    def fingerprint(self) -> dict[str, Fingerprint]:
        """Each collection's (table's) count and content digest now, monarch's own left out."""
        return self.engine.fingerprint()

    def migrations(self) -> list[MigrationFile]:
        """The project's migration files, in the order they run."""
        return discover(self.config.migrations_dir)

    def pending(self) -> list[str]:
        """The migrations a ``migrate`` would run now (not applied yet, or failed), in order."""
        return [status.name for status in list_migrations(self.config, self.name).needs_work]

    def migrate(self, *, to: str | None = None) -> RunResult:
        """Run the pending migrations (up to and including ``to``), as ``monarch migrate``."""
        return migrate(self.config, self.name, to=to, reporter=self.reporter)

    def migrate_one(self, name: str) -> RunResult:
        """Run migration ``name`` (full name, slug or timestamp), as ``monarch migrate_one``."""
        return migrate_one(self.config, name, self.name, reporter=self.reporter)

    def rollback(self, *, steps: int | None = None, to: str | None = None) -> RunResult:
        """Roll back the last applied migration (or ``steps`` of them, or all after ``to``),
        as ``monarch rollback``."""
        return rollback(self.config, self.name, steps=steps, to=to, reporter=self.reporter)

    def close(self) -> None:
        """Release the connection :attr:`engine` opened (the database stays until removed)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None


@contextmanager
def scratch_database(
    config: Config,
    environment: str,
    *,
    backup: str | None = None,
    query_set: str | None = None,
    keep: bool = False,
    reporter: Reporter | None = None,
) -> Iterator[ScratchDatabase]:
    """A new, empty database on ``environment``'s server (SQLite: a new file), seeded from
    ``backup`` (a backup's name, or ``latest:ENV``) or by copying ``environment``'s own
    database through ``query_set``, or not seeded at all; removed on exit unless ``keep``.

    Refused (UsageError, nothing made) for a protected environment, and when both seeds are
    given. ``reporter`` hears the migrations the methods run (default: the logger).
    """
    origin = config.environment(environment)
    if origin.protected:
        raise UsageError(
            f"environment {environment!r} is protected ({origin.protected_reason}); the test "
            "kit makes scratch databases only on servers of unprotected environments",
            hint=f"point the tests at a local or test environment, or set protected = false "
            f"under [environments.{environment}] if its server is one for tests",
        )
    if backup is not None and query_set is not None:
        raise UsageError(
            "a scratch database is seeded from a backup or through a query set, not both",
            hint="drop one of monarch_backup / monarch_query_set (or the marker's backup= / "
            "query_set=)",
        )
    chosen = _backup_named(config, backup) if backup is not None else None
    with ExitStack() as stack:
        made = stack.enter_context(scratch(origin, keep=keep, purpose="pytest")).environment
        alone = _config_with(config, {origin.name: made})
        if chosen is not None:
            restore(alone, chosen, origin.name)
        elif query_set is not None:
            both = _config_with(config, {_SOURCE: origin, origin.name: made})
            copy_db(both, _SOURCE, origin.name, query_set=query_set)
        db = ScratchDatabase(alone, alone.environments[origin.name], origin, reporter)
        stack.callback(db.close)  # before the removal: PostgreSQL drops no database in use
        yield db


def _config_with(config: Config, environments: dict[str, Environment]) -> Config:
    """``config`` with exactly ``environments``, each under its key."""
    named = {key: replace(env, name=key) for key, env in environments.items()}
    return replace(config, environments=MappingProxyType(named))


def _backup_named(config: Config, spec: str) -> str:
    """The backup ``spec`` names: itself, or for ``latest:ENV`` the newest one of ENV."""
    if not spec.startswith(LATEST):
        return spec
    of = spec.removeprefix(LATEST)
    found = list_backups(config, of)
    if not found:
        raise UsageError(
            f"{spec}: the store has no backup of environment {of!r}",
            hint=f"make one (`monarch backup {of}`) or name a backup (`monarch list_backups`)",
        )
    return str(found[-1].name)
