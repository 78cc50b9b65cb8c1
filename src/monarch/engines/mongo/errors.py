"""The one place where pymongo's errors become monarch's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from monarch.errors import ConnectionFailed, MonarchError, ServerBusy
from monarch.secrets import redact_exception

if TYPE_CHECKING:
    from monarch.config import Environment

AUTH_FAILED = 18
UNAUTHORIZED = 13
# Server error codes that mean "not now": a retry a moment later may succeed.
TRANSIENT_CODES = {
    24,  # LockTimeout
    50,  # MaxTimeMSExpired
    89,  # NetworkTimeout
    112,  # WriteConflict
    189,  # PrimarySteppedDown
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
}
# FerretDB's SQLite backend reports a busy database file as an internal error with this text.
TRANSIENT_TEXT = ("sqlite_busy", "database is locked", "database table is locked")


def scrub(environment: Environment, text: str) -> str:
    """Remove the environment's password (in every form) from a driver message; the driver's
    exception itself is scrubbed too, as monarch chains it ``from`` its own."""
    return environment.scrub(text)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


@contextmanager
def translated(environment: Environment, doing: str) -> Iterator[None]:
    """Run a block of pymongo calls, turning driver errors into MonarchError (``from`` them)."""
    import pymongo.errors as pe

    where = f"MongoDB at {environment.host} (environment {environment.name!r})"
    try:
        yield
    except MonarchError:
        raise
    except pe.PyMongoError as exc:
        redact_exception(exc, environment.secret_values())
        raise _translate(environment, where, doing, exc) from exc


def _translate(
    environment: Environment, where: str, doing: str, exc: BaseException
) -> MonarchError:
    import pymongo.errors as pe

    if isinstance(exc, pe.ConnectionFailure):
        # A connection dropped or timed out mid-request is worth a retry; pymongo reconnects.
        busy = isinstance(exc, pe.AutoReconnect) and not isinstance(
            exc, pe.ServerSelectionTimeoutError
        )
        detail = _detail(environment, exc).split(", Timeout:")[0]
        return (ServerBusy if busy else ConnectionFailed)(
            f"cannot reach {where} while {doing}: {detail}",
            hint="check that the server is running and that host and port in the URL are right",
        )
    if isinstance(exc, pe.OperationFailure) and exc.code in (AUTH_FAILED, UNAUTHORIZED):
        return ConnectionFailed(
            f"{where} refused the credentials while {doing}",
            hint="check the user name and password (or the ${VAR} that supplies them)",
        )
    if isinstance(exc, pe.OperationFailure) and is_transient(exc):
        return ServerBusy(
            f"{where} was busy while {doing}: {_detail(environment, exc)}",
            hint="the server is under load; run the command again in a moment",
        )
    return MonarchError(f"{where} failed while {doing}: {_detail(environment, exc)}")


def is_transient(exc: BaseException) -> bool:
    """Whether a pymongo error means the server was busy for a moment (a retry may work)."""
    code = getattr(exc, "code", None)
    text = str(exc).lower()
    return code in TRANSIENT_CODES or any(marker in text for marker in TRANSIENT_TEXT)


def _detail(environment: Environment, exc: BaseException) -> str:
    return first_line(scrub(environment, str(exc)))
