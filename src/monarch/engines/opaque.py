"""What the engines of an opaque backup stream (PostgreSQL's pg_dump, SQLite's database file)
share: the arguments of :class:`~monarch.engines.base.Engine` they refuse.

Such an engine dumps its database whole, so it takes no query set; and it restores a byte
stream, never the parsed dump (a :class:`~monarch.archive.events.DumpReader`) that the MongoDB
engine also takes. Both are the caller's mistakes, refused with UsageError before anything is
touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from monarch.errors import UsageError

if TYPE_CHECKING:
    from monarch.archive.events import DumpReader
    from monarch.config import Environment
    from monarch.io import Readable
    from monarch.querysets.plan import QueryPlan


def refuse_query_set(query_set: QueryPlan | None, engine: str, environment: Environment) -> None:
    """UsageError unless ``query_set`` is None (a safety net: callers refuse it first)."""
    if query_set is not None:
        raise UsageError(
            f"query sets select MongoDB collections and documents; a dump of environment "
            f"{environment.name!r} ({engine}) takes the whole database",
            hint="run it without a query set",
        )


def byte_stream(inp: Readable | DumpReader, backup_format: str) -> Readable:
    """``inp`` as the byte stream a restore reads; UsageError if it is not one."""
    if not callable(getattr(inp, "read", None)):
        raise UsageError(
            f"a restore of a {backup_format} reads a byte stream (something with read()), "
            f"not a {type(inp).__name__}"
        )
    return cast("Readable", inp)

