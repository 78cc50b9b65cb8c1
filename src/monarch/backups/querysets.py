"""Query sets applied to an engine's database (a class-based one runs there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monarch.querysets.files import load_query_set

if TYPE_CHECKING:
    from monarch.config import Config
    from monarch.engines.base import Engine
    from monarch.querysets.plan import QueryPlan


def query_set_for(
    config: Config, query_set: str | QueryPlan | None, engine: Engine
) -> QueryPlan | None:
    """The loaded query set for a dump of ``engine``'s database (a class-based one run there).

    Connects first when a class-based query set may need the database, so that an unreachable
    server fails as such rather than as a broken query set.
    """
    if not isinstance(query_set, str):
        return query_set
    database = None
    if engine.capabilities.query_sets:
        engine.server_info()
        database = getattr(engine, "db", None)
    return load_query_set(config, query_set, database=database)
