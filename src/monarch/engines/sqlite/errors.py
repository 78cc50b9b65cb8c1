"""The one place where sqlite3's errors, and problems with the database file, become monarch's."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from monarch.errors import ConnectionFailed, MonarchError, ServerBusy

if TYPE_CHECKING:
    from monarch.config import Environment

URL_HINT = "fix the path in the sqlite:/// URL (relative paths start at monarch.toml's folder)"


def where(environment: Environment) -> str:
    return f"SQLite database {environment.database} (environment {environment.name!r})"


def check_file(environment: Environment, *, must_exist: bool = False) -> Path:
    """The database file's path, after checking that SQLite will be able to open it.

    SQLite itself only says "unable to open database file"; this says why. A missing file is
    fine unless ``must_exist`` (SQLite creates it), a missing folder is not.
    """
    path = Path(environment.database)
    folder = path.parent
    if not folder.is_dir():
        missing = "does not exist" if not folder.exists() else "is not a folder"
        raise ConnectionFailed(
            f"cannot open {where(environment)}: its folder {folder} {missing}",
            hint=f"create the folder (mkdir -p {folder}), or {URL_HINT}",
        )
    if path.is_dir():
        raise ConnectionFailed(f"cannot open {where(environment)}: it is a folder", hint=URL_HINT)
    if not path.exists():
        if must_exist:
            raise ConnectionFailed(f"{where(environment)} does not exist", hint=URL_HINT)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConnectionFailed(
                f"cannot create {where(environment)}: no permission to write in {folder}"
            )
    elif not os.access(path, os.R_OK):
        raise ConnectionFailed(
            f"cannot read {where(environment)}: permission denied",
            hint="run monarch as a user that may read (and write) the file",
        )
    return path


@contextmanager
def translated(environment: Environment, doing: str) -> Iterator[None]:
    """Run a block of sqlite3 calls, turning its errors into MonarchError (``from`` them)."""
    try:
        yield
    except MonarchError:
        raise
    except sqlite3.Error as exc:
        raise sqlite_error(environment, exc, doing) from exc


def sqlite_error(environment: Environment, exc: BaseException, doing: str) -> MonarchError:
    """The monarch error for a sqlite3 error raised while ``doing``."""
    text = str(exc)
    lowered = text.lower()
    if "database is locked" in lowered or "database table is locked" in lowered:
        return ServerBusy(
            f"{where(environment)} stayed locked by another connection while {doing}",
            hint="another process holds a long write transaction; run again when it is done",
        )
    if "unable to open" in lowered:
        check_file(environment)  # raises with the reason when it can tell
        return ConnectionFailed(f"cannot open {where(environment)} while {doing}: {text}")
    if "not a database" in lowered or "malformed" in lowered:
        return ConnectionFailed(
            f"{where(environment)} is not a valid SQLite database (found while {doing}): {text}",
            hint=URL_HINT,
        )
    if "readonly" in lowered:
        return MonarchError(
            f"{where(environment)} is read-only for this process (while {doing})",
            hint="check the permissions of the file and of its folder",
        )
    return MonarchError(f"{where(environment)} failed while {doing}: {text}")
