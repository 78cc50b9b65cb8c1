"""What an environment's URL says about the server, read without connecting: its address, for
messages, and the secrets that no message may contain.

Both are asked by the error messages (:mod:`.errors`) and by the connection code
(:mod:`.conninfo`), which turns driver errors into those messages: they live here, below both.
An unparsable URL is no error here (reporting it is the connection's job): what config saw of
it is used instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monarch.config import Environment

DEFAULT_PORT = "5432"


def address(environment: Environment) -> str:
    """``host:port`` of the server, for messages (never credentials)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        raw = conninfo_to_dict(environment.url.reveal())
    except Exception:  # an unparsable URL is reported elsewhere; name what config saw
        return environment.host or "?"
    host = str(raw.get("host") or environment.host or "localhost")
    port = str(raw.get("port") or os.environ.get("PGPORT") or DEFAULT_PORT)
    return f"{host}:{port}"


def secrets_of(environment: Environment) -> list[str]:
    """The secret values a message about ``environment`` must never contain."""
    from psycopg.conninfo import conninfo_to_dict

    found = environment.secret_values()
    try:
        raw = conninfo_to_dict(environment.url.reveal())
    except Exception:
        raw = {}
    found += [str(raw[key]) for key in ("password", "sslpassword") if raw.get(key)]
    if os.environ.get("PGPASSWORD"):
        found.append(os.environ["PGPASSWORD"])
    return found
