"""The one place where pymongo's errors become monarch's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from monarch.errors import ConnectionFailed, MonarchError
from monarch.secrets import redact_exception

if TYPE_CHECKING:
    from monarch.config import Environment

AUTH_FAILED = 18
UNAUTHORIZED = 13


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
    except (pe.ServerSelectionTimeoutError, pe.AutoReconnect, pe.ConnectionFailure) as exc:
        redact_exception(exc, environment.secret_values())
        detail = first_line(scrub(environment, str(exc))).split(", Timeout:")[0]
        raise ConnectionFailed(
            f"cannot reach {where} while {doing}: {detail}",
            hint="check that the server is running and that host and port in the URL are right",
        ) from exc
    except pe.OperationFailure as exc:
        redact_exception(exc, environment.secret_values())
        if exc.code in (AUTH_FAILED, UNAUTHORIZED):
            raise ConnectionFailed(
                f"{where} refused the credentials while {doing}",
                hint="check the user name and password (or the ${VAR} that supplies them)",
            ) from exc
        raise MonarchError(
            f"{where} failed while {doing}: {first_line(scrub(environment, str(exc)))}"
        ) from exc
    except pe.PyMongoError as exc:
        redact_exception(exc, environment.secret_values())
        raise MonarchError(
            f"{where} failed while {doing}: {first_line(scrub(environment, str(exc)))}"
        ) from exc
