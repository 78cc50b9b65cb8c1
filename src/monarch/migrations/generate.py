"""Writing a new migration file from the template."""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monarch.errors import UsageError
from monarch.migrations.discovery import FILE_NAME, class_name

SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")

TEMPLATE = '''\
from monarch import MongoBackedMigration


class {class_name}(MongoBackedMigration):
    def run(self):
        """Move the data from one state to the next. Exceptions are handled by monarch."""
        raise NotImplementedError

    # def rollback(self):
    #     """Undo run(). Without it, `monarch rollback` refuses to roll this migration back."""
'''


def new_migration(folder: Path, name: str, now: datetime | None = None) -> Path:
    """Write ``<folder>/<UTC timestamp>_<name>.py`` and return its path.

    ``name`` must be a snake_case identifier not used by another migration. An existing file is
    never overwritten; a timestamp already taken (two files generated in one second) moves on by
    a second so that the order stays unambiguous.
    """
    if not SNAKE.match(name):
        suggestion = _snake(name)
        raise UsageError(
            f"{name!r} is not a valid migration name: use a snake_case identifier",
            hint=f"e.g. monarch generate {suggestion}" if suggestion else None,
        )
    folder.mkdir(parents=True, exist_ok=True)
    stamps = set()
    for existing in folder.iterdir():
        match = FILE_NAME.match(existing.name)
        if match is None:
            continue
        if match["slug"] == name:
            raise UsageError(
                f"a migration named {name!r} already exists: {existing}",
                hint="choose another name; migration names must be unique",
            )
        stamps.add(match["stamp"])
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    while (stamp := moment.strftime("%Y%m%d%H%M%S")) in stamps:
        moment += timedelta(seconds=1)
    path = folder / f"{stamp}_{name}.py"
    _write_new(path, TEMPLATE.format(class_name=class_name(name)))
    return path


def _write_new(path: Path, text: str) -> None:
    """Write ``path`` atomically, failing if it exists (a complete file or none at all)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # unlike rename, link never replaces an existing file
        except FileExistsError:
            raise UsageError(f"{path} already exists; nothing was written") from None
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or filesystem allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _snake(name: str) -> str:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    snake = re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_").lower()
    return snake if SNAKE.match(snake) else ""
