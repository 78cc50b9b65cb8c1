"""The backups monarch 0.0.x made: ``<base>__YYYY_MM_DD[_N].dmp.zip`` in the same store.

``<base>`` is the environment's database name (or the original's ``--name``); ``_N`` numbers
the second and later backups of a day. Each is one object at the store's root (under its
prefix on S3): a zip of one database's mongodump files (:mod:`monarch.archive.zipdump`). There
is no manifest; what can be known is the name, the day, the size and the store's time.

What monarch does with them:

- ``list_backups`` lists them beside its own, marked legacy, by date. Listing reads names only,
  so a damaged zip is listed and ``verify`` says what is wrong with it.
- ``restore NAME:ENV`` (NAME with or without ``.dmp.zip``, or the path of such a file) restores
  one through the same staged restore as any dump, so a damaged member fails before the swap.
- ``verify NAME`` reads the whole zip: CRC-32 of every member, metadata, every document.
- ``delete_backup NAME`` deletes one. ``prune`` never does: its rules are for monarch's backups,
  and it reports the legacy ones it left alone.

A zip needs random access. A store whose reader cannot seek (S3) is first copied to a temporary
file (in ``TMPDIR``), refused up front when that folder lacks the room, removed when done.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from monarch.errors import ArchiveError, BackupError, BackupNotFound
from monarch.stores.base import ObjectNotFound

if TYPE_CHECKING:
    from monarch.stores.base import ObjectInfo, Store

SUFFIX = ".dmp.zip"
_NAME_RE = re.compile(r"^(?P<base>[^/\\]+?)__(?P<day>\d{4}_\d{2}_\d{2})(?:_(?P<n>\d+))?$")
_SPOOL_MARGIN = 64 * 1024 * 1024
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LegacyBackup:
    """A backup made by monarch 0.0.x, as the store lists it (no manifest to read)."""

    name: str
    """The object's name without ``.dmp.zip``, e.g. ``app__2016_11_01_2``."""
    key: str
    database: str
    """The base of the name: the database name, or the original's ``--name``."""
    day: date
    number: int
    """1 for a day's first backup, N for ``_N``."""
    size: int
    modified: datetime
    legacy = True

    @property
    def time_known(self) -> bool:
        """Whether the store's time is that of the backup (it falls on the name's day)."""
        return self.modified.astimezone(UTC).date() == self.day

    @property
    def created(self) -> datetime:
        """When it was made: the store's time if it falls on the name's day, else that day."""
        if self.time_known:
            return self.modified
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)


def parse_legacy_name(name: str) -> tuple[str, date, int] | None:
    """``(base, day, number)`` of a legacy backup name (with or without ``.dmp.zip``)."""
    stem = name.removesuffix(SUFFIX)
    match = _NAME_RE.match(stem)
    if match is None:
        return None
    try:
        day = datetime.strptime(match["day"], "%Y_%m_%d").date()
    except ValueError:
        return None
    return match["base"], day, int(match["n"] or 1)


def legacy_key(name: str) -> str:
    """The store key of legacy backup ``name`` (given with or without ``.dmp.zip``)."""
    return name.removesuffix(SUFFIX) + SUFFIX


def is_legacy(name: str) -> bool:
    """Whether ``name`` is a legacy backup's name, or a path to a zip."""
    return parse_legacy_name(name) is not None or name.lower().endswith(".zip")


def _from_object(obj: ObjectInfo) -> LegacyBackup | None:
    if "/" in obj.key or not obj.key.endswith(SUFFIX):
        return None
    parsed = parse_legacy_name(obj.key)
    if parsed is None:
        return None
    base, day, number = parsed
    return LegacyBackup(obj.key.removesuffix(SUFFIX), obj.key, base, day, number, obj.size,
                        obj.modified)


def list_legacy(store: Store, database: str | None = None) -> list[LegacyBackup]:
    """The legacy backups at the store's root (only ``database``'s when given), oldest first."""
    return legacy_among(store.list(f"{database}__" if database else ""), database)


def legacy_among(objects: Iterable[ObjectInfo], database: str | None = None) -> list[LegacyBackup]:
    """The legacy backups among listed ``objects`` (only ``database``'s when given), oldest
    first."""
    found = [
        backup
        for obj in objects
        if (backup := _from_object(obj)) is not None
        and (database is None or backup.database == database)
    ]
    return sorted(found, key=lambda b: (b.day, b.number, b.created, b.name))


def find_legacy(store: Store, name: str) -> LegacyBackup | None:
    """The legacy backup called ``name`` (with or without ``.dmp.zip``), or None."""
    key = legacy_key(name)
    for obj in store.list(key):
        if obj.key == key:
            return _from_object(obj)
    return None


@contextmanager
def open_seekable(store: Store, backup: LegacyBackup) -> Iterator[BinaryIO]:
    """The stored zip as a seekable file: the store's own stream, or a temporary copy."""
    try:
        raw = store.reader(backup.key)
    except ObjectNotFound:
        raise BackupNotFound(f"the legacy backup {backup.name!r} is gone from "
                             f"{store.display_url}") from None
    with raw:
        if _seekable(raw):
            yield raw
            return
        with _spooled(raw, backup) as copy:
            yield copy


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def _spooled(raw: BinaryIO, backup: LegacyBackup) -> Iterator[BinaryIO]:
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if free < backup.size + _SPOOL_MARGIN:
        raise BackupError(
            f"the legacy backup {backup.name!r} ({backup.size:,} bytes) is read through a "
            f"temporary copy, and {folder} has only {free:,} bytes free",
            hint="set TMPDIR to a folder with room for it",
        )
    with tempfile.TemporaryFile(prefix="monarch-legacy-") as copy:
        copied = 0
        try:
            while chunk := raw.read(_COPY_CHUNK):
                copied += len(chunk)
                if copied > backup.size:
                    raise ArchiveError(f"the legacy backup {backup.name!r} grew while it was "
                                       "read; read it again")
                copy.write(chunk)
            copy.flush()
        except OSError as exc:
            raise BackupError(f"cannot copy the legacy backup {backup.name!r} into {folder}: "
                              f"{exc.strerror}", hint="set TMPDIR to a folder with room") from None
        copy.seek(0)
        yield copy


def _database_of(file_name: str) -> str:
    parsed = parse_legacy_name(file_name)
    if parsed is not None:
        return parsed[0]
    return file_name.removesuffix(".zip").removesuffix(".dmp") or "legacy"


def locate(
    store: Store, name: str
) -> tuple[AbstractContextManager[BinaryIO], str, str] | None:
    """How to open the zip ``name`` means, its database and how to call it; None if no zip.

    A legacy name is looked up in the store first, then as a file; a path ending ``.zip`` is
    a file.
    """
    path = Path(name).expanduser()
    if parse_legacy_name(name) is not None and "/" not in name:
        backup = find_legacy(store, name)
        if backup is not None:
            return (open_seekable(store, backup), backup.database,
                    f"the legacy backup {backup.name}")
        if not path.is_file():
            raise BackupNotFound(f"no legacy backup {legacy_key(name)!r} in "
                                 f"{store.display_url}",
                                 hint="run `monarch list_backups` to see the backups")
    elif not (path.is_file() and name.lower().endswith(".zip")):
        return None
    return _opened_path(path), _database_of(path.name), str(path)


@contextmanager
def _opened_path(path: Path) -> Iterator[BinaryIO]:
    try:
        file = path.open("rb")
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    with file:
        yield file


def delete_legacy(store: Store, backup: LegacyBackup) -> str:
    """Delete one legacy backup; return its key."""
    with suppress(ObjectNotFound):  # already gone: the goal is reached
        store.delete(backup.key)
    return backup.key
