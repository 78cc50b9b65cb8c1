"""The one place where psycopg's errors (and pg_dump's complaints) become monarch's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from monarch.engines.postgres.urlparts import address, secrets_of
from monarch.errors import BackupError, ConnectionFailed, DatabaseMissing, MonarchError, ServerBusy
from monarch.secrets import redact_exception, redact_text

if TYPE_CHECKING:
    from monarch.config import Environment

_UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "could not translate host name",
    "no route to host",
    "network is unreachable",
    "could not connect",
    "no such file or directory",  # a unix socket that is not there
)
_CREDENTIALS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "password is required",
    "pg_hba.conf",
)
_LOST = (
    "server closed the connection",
    "terminating connection",
    "connection is closed",
    "consuming input failed",
    "the connection is lost",
    "ssl syscall error",
    "eof detected",
)


def scrub(environment: Environment, text: str) -> str:
    """``text`` without any password of ``environment``."""
    return redact_text(environment.scrub(text), secrets_of(environment))


def _redact(environment: Environment, exc: BaseException) -> None:
    """Scrub the environment's secrets from ``exc`` and what it chains, in place."""
    redact_exception(exc, secrets_of(environment))


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def _detail(environment: Environment, exc: BaseException) -> str:
    text = scrub(environment, str(exc))
    # libpq prefixes "connection failed: connection to server at ..., port N failed: "
    return first_line(text.rpartition(" failed: ")[2] if " failed: " in text else text)


def describe(environment: Environment, dbname: str | None = None) -> str:
    """``PostgreSQL at host:port (database 'x', environment 'y')``: who we talked to."""
    database = dbname or environment.database
    return (
        f"PostgreSQL at {address(environment)} "
        f"(database {database!r}, environment {environment.name!r})"
    )


def connection_error(
    environment: Environment, exc: BaseException, doing: str, dbname: str | None = None
) -> MonarchError:
    """The monarch error for a failed or lost connection."""
    where = describe(environment, dbname)
    text = scrub(environment, str(exc)).lower()
    database = dbname or environment.database
    if "just been dropped or renamed" in text:
        # A connection that arrived while a restore renamed databases: a moment later the name
        # is there again.
        return ServerBusy(
            f"database {database!r} on PostgreSQL at {address(environment)} was being swapped "
            f"(renamed) while {doing}",
            hint="a restore or drop_db was swapping it in; run the command again",
        )
    if "database" in text and "does not exist" in text:
        return DatabaseMissing(
            f"database {database!r} does not exist on PostgreSQL at {address(environment)} "
            f"(environment {environment.name!r})",
            hint=f"create it ({_createdb(environment, database)}), "
            "or fix the database name in the URL",
        )
    if any(marker in text for marker in _CREDENTIALS):
        return ConnectionFailed(
            f"{where} refused the credentials while {doing}: {_detail(environment, exc)}",
            hint="check the user name and password (in the URL, a ${VAR} it uses, "
            "PGPASSWORD or the PGPASSFILE)",
        )
    if any(marker in text for marker in _UNREACHABLE):
        return ConnectionFailed(
            f"cannot reach {where} while {doing}: {_detail(environment, exc)}",
            hint="check that the server is running and that host and port in the URL are right",
        )
    if any(marker in text for marker in _LOST):
        return ConnectionFailed(
            f"lost the connection to {where} while {doing}: {_detail(environment, exc)}",
            hint="the server closed it (restarted, or a restore or an administrator ended the "
            "session); run the command again",
        )
    return ConnectionFailed(f"{where} failed while {doing}: {_detail(environment, exc)}")


def _createdb(environment: Environment, database: str) -> str:
    host, _, port = address(environment).rpartition(":")
    return f"createdb -h {host} -p {port} {database}"


@contextmanager
def translated(
    environment: Environment, doing: str, *, dbname: str | None = None
) -> Iterator[None]:
    """Run a block of psycopg calls, turning driver errors into MonarchError (``from`` them).

    libpq quotes a malformed URL whole, password included, in its error (and psycopg chains
    another holding it): the driver's errors are scrubbed in place before being chained.
    """
    import psycopg
    import psycopg.errors as pe

    try:
        yield
    except MonarchError:
        raise
    except (
        pe.SerializationFailure,
        pe.DeadlockDetected,
        pe.LockNotAvailable,
        pe.TooManyConnections,
        pe.CannotConnectNow,
    ) as exc:
        _redact(environment, exc)
        raise ServerBusy(
            f"{describe(environment, dbname)} was busy while {doing}: {_detail(environment, exc)}",
            hint="the server is under load (or starting); run the command again in a moment",
        ) from exc
    except pe.InsufficientPrivilege as exc:
        _redact(environment, exc)
        raise MonarchError(
            f"{describe(environment, dbname)} refused while {doing}: {_detail(environment, exc)}",
            hint="the role in the URL lacks a privilege this needs; grant it or use another role",
        ) from exc
    except psycopg.OperationalError as exc:
        _redact(environment, exc)
        raise connection_error(environment, exc, doing, dbname) from exc
    except psycopg.InterfaceError as exc:
        _redact(environment, exc)
        raise connection_error(environment, exc, doing, dbname) from exc
    except psycopg.Error as exc:
        _redact(environment, exc)
        raise MonarchError(
            f"{describe(environment, dbname)} failed while {doing}: {_detail(environment, exc)}"
        ) from exc


def tool_failed(environment: Environment, tool: str, status: int, stderr: str) -> BackupError:
    """The error for a PostgreSQL client tool that exited with ``status``."""
    text = scrub(environment, stderr).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    shown = "\n".join(lines[-8:]) if lines else "(it printed nothing)"
    lowered = text.lower()
    hint = None
    if any(marker in lowered for marker in _CREDENTIALS):
        hint = "check the password (in the URL, a ${VAR}, PGPASSWORD or the PGPASSFILE)"
    elif "role" in lowered and "does not exist" in lowered:
        hint = "create that role on the target, or restore without privileges"
    elif "permission denied" in lowered:
        hint = "the role in the URL lacks a privilege this needs"
    how = f"exit status {status}" if status >= 0 else f"killed by signal {-status}"
    return BackupError(f"{tool} failed for {describe(environment)} ({how}):\n{shown}", hint=hint)
