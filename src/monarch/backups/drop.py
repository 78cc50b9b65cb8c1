"""drop_db: remove an environment's database, as the original ``monarch drop_db ENV`` did.

A protected environment needs its name typed back (``confirm``), exactly as for a restore. What
"drop" means depends on the engine (each engine's ``drop()``): MongoDB drops the database;
PostgreSQL replaces it by an empty database with the same owner, grants and settings (the
environment stays usable); SQLite removes the file (the next use creates an empty one). Every
engine first cleans up what an interrupted restore left, and refuses while a restore runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monarch.errors import NotImplementedYet

if TYPE_CHECKING:
    from monarch.config import Config
    from monarch.engines.base import Dropped


def drop_db(config: Config, env_name: str, *, confirm: str | None = None) -> Dropped:
    """Drop environment ``env_name``'s database; return what was removed.

    ``confirm`` must be the environment's name if it is protected (else ConfirmationRequired,
    and nothing is done). A database that does not exist is no error (``existed`` is False).
    """
    from monarch.engines import engine_for
    from monarch.safety import require_confirmation

    environment = config.environment(env_name)
    require_confirmation(environment, "drop_db", confirm)
    engine = engine_for(environment)
    try:
        drop = getattr(engine, "drop", None)
        if not callable(drop):
            raise NotImplementedYet(
                f"drop_db is not supported for {engine.name} environments such as "
                f"{environment.name!r}; nothing was done"
            )
        engine.server_info()  # an unreachable server fails as such, before anything else
        result: Dropped = drop()
        return result
    finally:
        engine.close()
