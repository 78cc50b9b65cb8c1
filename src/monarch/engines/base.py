"""The interface every database engine implements.

An engine wraps one environment's database. It is created unconnected by
:func:`monarch.engines.engine_for` and connects lazily; ``close()`` releases everything.
Driver errors never escape an engine: each backend maps them to :mod:`monarch.errors` in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from monarch.config import Environment
    from monarch.migrations.store import HistoryStore, MigrationLock


@dataclass(frozen=True)
class ServerInfo:
    """What a server says about itself."""

    engine: str
    version: str
    supports_transactions: bool
    details: str = ""


class Engine(Protocol):
    """One environment's database, as monarch uses it."""

    name: str
    environment: Environment

    def server_info(self) -> ServerInfo:
        """Connect if needed and describe the server; raises ConnectionFailed within seconds."""
        ...

    def migration_context(self) -> dict[str, Any]:
        """Attributes given to migration instances (``db``, ``client`` for MongoDB...)."""
        ...

    def history(self) -> HistoryStore:
        """The migration history of this database (see :mod:`monarch.migrations.store`)."""
        ...

    def migration_lock(self, name: str = "migrate") -> MigrationLock:
        """The lease lock named ``name`` that serialises migration runs on this database."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...
