"""mongoengine's default connection while MongoDB migrations run, when mongoengine is installed.

monarch 0.0.x called ``mongoengine.connect(db_name, host=uri)`` before running migrations, and its
migrations reached the database through ``mongoengine.connection.get_db()`` or mongoengine
``Document`` models. So that they run unchanged, the engine registers the environment as
mongoengine's ``default`` connection before the first migration runs and disconnects it when the
engine closes (which also drops the collections that models cached). mongoengine stays optional:
without it nothing happens.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from monarch.errors import MigrationError

if TYPE_CHECKING:
    from monarch.config import Environment

ALIAS = "default"


class MongoengineDefault:
    """Registers one environment as mongoengine's default connection, and releases it."""

    def __init__(self, environment: Environment, timeout_ms: int) -> None:
        self._environment = environment
        self._timeout_ms = timeout_ms
        self._module: Any = None

    def register(self, listeners: Sequence[object] = ()) -> None:
        """Make the environment mongoengine's default connection (once; no-op without it),
        its client given the pymongo event ``listeners`` (monarch's write accounting).

        Raises MigrationError when this process already registered another default connection:
        the migrations would otherwise write to whichever database that one points at.
        """
        if self._module is not None:
            return
        try:
            mongoengine = importlib.import_module("mongoengine")
        except ImportError:
            return
        connection = importlib.import_module("mongoengine.connection")
        try:
            connection.get_connection(ALIAS)
        except connection.ConnectionFailure:
            pass  # none registered: the usual case
        else:
            raise MigrationError(
                "mongoengine already has a default connection in this process, and monarch "
                f"makes environment {self._environment.name!r} mongoengine's default while its "
                "migrations run; nothing was run",
                hint="call mongoengine.disconnect() before monarch runs migrations",
            )
        try:
            mongoengine.connect(
                db=self._environment.database,
                host=self._environment.url.reveal(),
                alias=ALIAS,
                # What 0.0.x's mongoengine and pymongo 3 used: UUIDs it stored read back the same.
                uuidRepresentation="pythonLegacy",
                serverSelectionTimeoutMS=self._timeout_ms,
                connect=False,  # no connection until a migration uses it
                event_listeners=list(listeners),
            )
        except Exception as exc:
            # Its message may quote the URL, password included: name the error only.
            raise MigrationError(
                f"could not make environment {self._environment.name!r} mongoengine's default "
                f"connection ({type(exc).__name__}); nothing was run",
                hint="check the environment's URL with `monarch list_environments`",
            ) from None
        self._module = mongoengine

    def release(self) -> None:
        """Disconnect the default connection registered by :meth:`register`, if any."""
        if self._module is not None:
            module, self._module = self._module, None
            module.disconnect(ALIAS)
