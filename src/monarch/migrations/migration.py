"""The base classes users subclass to write a migration.

A migration is a Python file holding one subclass with a ``run()`` method (and, optionally, a
``rollback()`` that undoes it)::

    from monarch import MongoMigration

    class AddIndexesToUserTableMigration(MongoMigration):
        def run(self):
            self.db.users.create_index("email", unique=True)

monarch creates the instance, gives it its attributes and calls ``run()``; any exception is
recorded as the migration's failure. There is one base class per engine (``MongoMigration``,
``PostgresMigration``, ``SQLiteMigration``); a migration runs only on environments of its engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from monarch.engines import registry
from monarch.errors import MigrationError

if TYPE_CHECKING:
    import sqlite3

    import psycopg
    from pymongo import MongoClient
    from pymongo.collection import Collection
    from pymongo.database import Database

    from monarch.engines.sqltext import SQLDialect


class Runtime(Protocol):
    """What the runner gives a running migration (its progress, checkpoints and lock, and the
    engine's SQL dialect for ``.sql`` files)."""

    def progress(self, label: str, done: int, total: int | None) -> None: ...

    def checkpoint(self, key: str) -> dict[str, Any] | None: ...

    def save_checkpoint(self, key: str, state: dict[str, Any]) -> None: ...

    def check(self) -> None: ...

    def sql(self) -> SQLDialect: ...


ENGINE_NAMES = {row.name: row.display for row in registry.engines()}
"""How messages name each engine (engine name -> display name)."""


class Migration:
    """Base class of every migration, whatever the database.

    Attributes available in :meth:`run` and :meth:`rollback`:

    - ``env``: the environment's name (e.g. ``"production"``);
    - ``name``: the migration's name (its file name without ``.py``);
    - ``log``: a :class:`logging.Logger` named ``monarch.migration.<name>``;
    - ``session``: the open transaction's session when ``transactional = True`` (on MongoDB, pass
      it to every database call that must be part of the transaction; on PostgreSQL and SQLite it
      is the connection itself), else None.

    Set ``transactional = True`` on a subclass to run it and its history record in one
    transaction (the default of ``PostgresMigration`` and ``SQLiteMigration``); monarch refuses
    to run it on a server without transactions.

    ``engines`` names the engines the migration can run on (None: any); monarch refuses, before
    anything runs, to run it on an environment of another engine.
    """

    transactional: ClassVar[bool] = False
    engines: ClassVar[frozenset[str] | None] = None

    name: str
    env: str
    log: logging.Logger
    session: Any = None
    _runtime: Runtime | None = None

    def run(self) -> None:
        """Move the data from one state to the next. Exceptions are handled by monarch."""
        raise NotImplementedError

    def rollback(self) -> None:
        """Undo :meth:`run`. Migrations that do not override it cannot be rolled back."""
        raise NotImplementedError

    @classmethod
    def runs_on(cls, engine: str) -> bool:
        """Whether this migration can run on an environment of ``engine`` (e.g. ``"sqlite"``)."""
        return cls.engines is None or engine in cls.engines

    @classmethod
    def kind(cls) -> str:
        """What the migration is, for messages: e.g. ``a MongoMigration``."""
        for base in cls.__mro__:
            if base.__module__ == __name__ and base is not Migration:
                return f"a {base.__name__}"
        return "a migration"

    @classmethod
    def has_rollback(cls) -> bool:
        """Whether the class defines its own :meth:`rollback`."""
        return cls.rollback is not Migration.rollback

    def progress(self, done: int, total: int | None = None, *, label: str = "") -> None:
        """Report that ``done`` of ``total`` items are processed (shown with a rate and ETA).

        Call it as often as you like: the display is throttled. ``label`` distinguishes several
        loops in one migration.
        """
        self._require_runtime().progress(label or self.name, done, total)

    def load_checkpoint(self, key: str) -> dict[str, Any] | None:
        """The state saved under ``key`` by an earlier, unfinished run of this migration.

        None when the migration starts from scratch (first run, or after it was applied).
        """
        return self._require_runtime().checkpoint(key)

    def save_checkpoint(self, key: str, state: Mapping[str, Any]) -> None:
        """Save ``state`` (BSON-compatible values) in the history record.

        If the run is killed, the next ``migrate`` resumes and :meth:`load_checkpoint` returns
        it. The work done since the last checkpoint is done again, so it must be idempotent.
        """
        runtime = self._require_runtime()
        runtime.check()
        runtime.save_checkpoint(key, dict(state))

    def _bind(
        self, *, name: str, env: str, context: Mapping[str, Any], runtime: Runtime | None
    ) -> None:
        """Give the instance its environment (called by the runner before run/rollback)."""
        self.name = name
        self.env = env
        self.log = logging.getLogger(f"monarch.migration.{name}")
        self._runtime = runtime
        for key, value in context.items():
            setattr(self, key, value)

    def _require_runtime(self) -> Runtime:
        if self._runtime is None:
            raise MigrationError(
                f"{type(self).__name__} is not running under monarch: progress and checkpoints "
                "work only inside run() or rollback()"
            )
        return self._runtime


class MongoMigration(Migration):
    """A migration for a MongoDB environment.

    Adds ``db`` (the environment's pymongo ``Database``), ``client`` (its ``MongoClient``) and
    :meth:`batches`, the way to walk a large collection resumably.
    """

    engines = frozenset({"mongo"})

    db: Database[dict[str, Any]]
    client: MongoClient[dict[str, Any]]

    def batches(
        self,
        collection: str | Collection[Any],
        filter: Mapping[str, Any] | None = None,
        size: int = 1000,
        *,
        projection: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the documents of ``collection`` (a name or a pymongo collection) matching
        ``filter``, ``size`` at a time.

        The walk goes by ``_id`` ranges (``_id > last``, sorted, limited), so no cursor stays open
        between batches. After each batch has been processed (when the loop asks for the next
        one) its last ``_id`` is saved as a checkpoint under ``key`` (default: the collection's
        name): a run that is killed resumes after the last finished batch. A batch interrupted
        half-way is processed again, so the loop body must be idempotent (e.g. ``$set`` to a
        computed value, not ``$inc``). Progress with counts and ETA is reported as it goes.
        """
        # The MongoDB engine (with bson, ~100 ms) loads for a migration that walks batches, not
        # for every migration file of a PostgreSQL or SQLite project, which imports this module.
        from monarch.engines.mongo.batches import walk  # noqa: PLC0415

        runtime = self._require_runtime()
        name = collection if isinstance(collection, str) else collection.name
        label = key or name
        yield from walk(
            self.db[name],
            filter=dict(filter or {}),
            size=size,
            projection=dict(projection) if projection is not None else None,
            state=runtime.checkpoint(label),
            save=lambda state: self.save_checkpoint(label, state),
            report=lambda done, total: runtime.progress(label, done, total),
            session=self.session,
        )


# The name the original monarch used; existing migration files import it.
MongoBackedMigration = MongoMigration


class PostgresMigration(Migration):
    """A migration for a PostgreSQL environment.

    ``self.conn`` is a psycopg 3 connection in autocommit mode, the same one that writes the
    history. By default ``run()`` (and ``rollback()``) runs inside one transaction together with
    the migration's history record: it commits whole, record included, or not at all; a
    ``with self.conn.transaction():`` inside it is a savepoint. Statements that cannot run in a
    transaction (``CREATE INDEX CONCURRENTLY``, ``ALTER TYPE ... ADD VALUE`` on old servers)
    need ``transactional = False``: each statement then commits on its own, and the record is
    written after ``run()`` returns.
    """

    transactional = True
    engines = frozenset({"postgres"})

    conn: psycopg.Connection[Any]


class SQLiteMigration(Migration):
    """A migration for a SQLite environment.

    ``self.conn`` is a :mod:`sqlite3` connection with ``isolation_level=None`` (the module never
    begins or commits behind your back), the same one that writes the history. By default
    ``run()`` (and ``rollback()``) runs inside one ``BEGIN IMMEDIATE`` ... ``COMMIT`` together
    with the migration's history record; do not call ``commit()``, ``BEGIN`` or ``COMMIT`` in it
    (``SAVEPOINT`` is fine). Statements that cannot run in a transaction (``VACUUM``, some
    ``PRAGMA`` changes) need ``transactional = False``: each statement then commits on its own,
    and the record is written after ``run()`` returns.
    """

    transactional = True
    engines = frozenset({"sqlite"})

    conn: sqlite3.Connection
