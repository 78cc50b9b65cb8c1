"""Connection parameters of a PostgreSQL environment: for psycopg, and for pg_dump and friends.

The URL is parsed by libpq itself (through psycopg), so every form libpq accepts works: the
``postgresql://`` and ``postgres://`` schemes, query parameters, a unix socket folder as ``host``.
A password may come from the URL, ``PGPASSWORD`` or a ``PGPASSFILE``: libpq reads the last two by
itself, in monarch's process and in the child processes alike.

Child processes get every parameter through libpq's environment variables, so nothing (not even
the host or user) lands in their argv, which any user of the machine can read.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from monarch.engines.postgres.errors import translated
from monarch.errors import BackupError

if TYPE_CHECKING:
    import psycopg

    from monarch.config import Environment

# libpq connection parameter -> the environment variable libpq reads it from.
_ENV_VARS = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "channel_binding": "PGCHANNELBINDING",
    "sslmode": "PGSSLMODE",
    "requiressl": "PGREQUIRESSL",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}
# Secret parameters libpq has no environment variable for: refused rather than put in argv.
_ARGV_UNSAFE = frozenset({"sslpassword"})


def connect_timeout() -> int:
    """Seconds to wait for an unreachable server (``MONARCH_CONNECT_TIMEOUT_MS``, default 5 s)."""
    millis = int(os.environ.get("MONARCH_CONNECT_TIMEOUT_MS", "5000"))
    return max(1, round(millis / 1000))  # libpq counts whole seconds; 0 would mean forever


def parameters(environment: Environment, dbname: str | None = None) -> dict[str, str]:
    """libpq's parameters for ``environment`` (password included), database overridden."""
    from psycopg.conninfo import conninfo_to_dict

    with translated(environment, "reading the URL"):
        raw: dict[str, Any] = conninfo_to_dict(environment.url.reveal())
    params = {key: str(value) for key, value in raw.items() if value is not None}
    params.setdefault("connect_timeout", str(connect_timeout()))
    params.setdefault("application_name", "monarch")
    # The environment's database, which is the URL's unless a command chose another of the
    # same server (restore --database); the URL's credentials and settings stay.
    params["dbname"] = dbname if dbname is not None else environment.database
    return params


def connect(
    environment: Environment,
    *,
    dbname: str | None = None,
    doing: str = "connecting",
) -> psycopg.Connection[Any]:
    """A new autocommit connection to the environment's server (database ``dbname`` if given)."""
    import psycopg

    params = parameters(environment, dbname)
    with translated(environment, doing, dbname=params.get("dbname")):
        return psycopg.connect(**params, autocommit=True)  # type: ignore[arg-type]


def child_environment(
    environment: Environment, dbname: str | None = None
) -> tuple[dict[str, str], str]:
    """The environment variables and the ``--dbname`` value for a libpq tool.

    Every parameter libpq can read from the environment goes there; the rest (keepalive
    settings and the like, never secrets) goes into a keyword/value ``--dbname`` string.
    """
    from psycopg.conninfo import make_conninfo

    params = parameters(environment, dbname)
    unsafe = sorted(_ARGV_UNSAFE & params.keys())
    if unsafe:
        raise BackupError(
            f"environment {environment.name!r}: the URL parameter {unsafe[0]!r} cannot be passed "
            "to pg_dump/pg_restore without putting it on their command line",
            hint="use a client key without a passphrase, or a PGSERVICEFILE with the setting",
        )
    env = dict(os.environ)
    rest: dict[str, str] = {}
    for key, value in params.items():
        if key in _ENV_VARS:
            env[_ENV_VARS[key]] = value
        else:
            rest[key] = value
    # The database goes in --dbname too: without it pg_restore writes SQL instead of restoring.
    rest["dbname"] = params.get("dbname", "")
    return env, make_conninfo("", **rest)
