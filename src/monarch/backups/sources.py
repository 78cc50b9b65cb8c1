"""Where a restore reads from: a backup in the store (held to its manifest), a backup of
monarch 0.0.x (a zip, in the store or a file: :mod:`monarch.backups.legacy`), or a mongodump
archive file or directory dump.

:func:`open_source` turns the user's BACKUP argument into a :class:`Source`: what the engine's
``restore`` reads (a checked byte stream, or a dump reader), the database to take from it, the
sizes to announce, and what to close.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from monarch.archive.compression import open_decompressed_reader
from monarch.archive.directory import DirectoryReader
from monarch.archive.limits import CEILING_HINT, LimitedReader, restore_ceiling
from monarch.archive.reader import ArchiveReader
from monarch.archive.zipdump import ZipDumpReader
from monarch.backups.catalog import open_manifest
from monarch.backups.keys import BackupKeys
from monarch.backups.legacy import is_legacy, locate
from monarch.backups.manifest import ARCHIVE_FORMAT
from monarch.backups.naming import parse_name
from monarch.backups.stored import CheckedArchive, open_checked
from monarch.errors import ArchiveError, BackupError, BackupNotFound, UsageError
from monarch.progress import Item

if TYPE_CHECKING:
    from monarch.archive.events import DumpReader
    from monarch.archive.meta import CollectionMeta
    from monarch.backups.manifest import Manifest
    from monarch.engines.base import Engine
    from monarch.io import Readable
    from monarch.stores.base import Store

SYSTEM_DATABASES = frozenset({"admin", "config", "local"})
"""Databases a whole-server dump carries besides the application's; never chosen by default."""


def choose_database(metas: Sequence[CollectionMeta], from_db: str | None, what: str) -> str:
    """The database of a dump to restore: ``from_db`` if given, else the only one there is."""
    found = sorted({m.db for m in metas if m.db})
    listing = ", ".join(found) or "(none)"
    if from_db is not None:
        if from_db not in found:
            raise UsageError(f"{what} has no database {from_db!r}; it holds: {listing}")
        return from_db
    candidates = [db for db in found if db not in SYSTEM_DATABASES] or found
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ArchiveError(f"{what} holds no collections to restore")
    raise UsageError(f"{what} holds several databases ({listing}); say which one to restore",
                     hint=f"pass --from-db NAME, e.g. --from-db {candidates[0]}")


class Closable(Protocol):
    """What a source closes when done: its stream, or everything a legacy zip opened."""

    def close(self) -> None: ...


class Source:
    """An opened dump: what the engine reads, the database to take from it, what to close.

    ``kind``: ``"backup"``, ``"legacy"``, ``"archive"`` or ``"directory"``. ``manifest``: a
    backup's. ``expected``: sizes to announce, by item name.
    """

    def __init__(self, kind: str, input: Readable | DumpReader, database: str,
                 expected: dict[str, Item] | None = None, stream: Closable | None = None,
                 *, manifest: Manifest | None = None) -> None:
        self.kind = kind
        self.input = input
        self.database = database
        self.expected = expected or {}
        self.manifest = manifest
        self._stream = stream

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()


def open_source(
    store: Store, name: str, engine: Engine, from_db: str | None,
    ceiling: tuple[str | int | None, str] = (None, "--max-size"),
    *, keys: BackupKeys | None = None,
) -> Source:
    """Open BACKUP ``name`` for a restore into ``engine``'s database.

    A backup is held to its manifest; a mongodump archive, directory or legacy zip (only for
    an engine that takes them) to the restore ceiling: ``ceiling`` is the configured limit, if
    any, and where it was set (else :func:`~monarch.archive.limits.restore_ceiling`'s
    default). Anything else is refused before the target is touched. ``keys`` check the
    manifest's tag and decrypt an encrypted backup (catalog.open_manifest): a wrong or missing
    identity, or an edited manifest, is refused before the target is touched.
    """
    environment = engine.environment
    if parse_name(name) is not None:
        return _open_backup(store, name, engine, from_db, keys or BackupKeys())
    if not engine.capabilities.mongodump_input:
        if is_legacy(name):
            raise UsageError(
                f"{name!r} is a backup of monarch 0.0.x, a MongoDB dump; environment "
                f"{environment.name!r} is {environment.engine}, so nothing was restored",
                hint="restore it into a MongoDB environment",
            )
        raise UsageError(
            f"{name!r} is not a backup name; a file or folder given as BACKUP is a "
            "mongodump dump, which restores into a MongoDB environment, and "
            f"{environment.name!r} is {environment.engine}",
            hint="run `monarch list_backups` for backup names",
        )
    found = locate(store, name)
    if found is not None:
        return _open_legacy(*found, from_db, ceiling)
    path = Path(name).expanduser()
    if path.is_dir():
        return _open_directory(path, from_db, ceiling)
    if path.is_file():
        return _open_file(path, from_db, ceiling)
    raise BackupNotFound(
        f"{name!r} is neither a backup name nor an existing mongodump archive or directory",
        hint="run `monarch list_backups` for backup names, or check the path",
    )


def check_compatible(manifest: Manifest, engine: Engine) -> None:
    """Refuse a backup of another engine (or format) before anything is touched."""
    environment = engine.environment
    if manifest.engine != environment.engine or manifest.archive.format != engine.backup_format:
        raise UsageError(
            f"backup {manifest.name!r} is a {manifest.archive.format} of a {manifest.engine} "
            f"database; environment {environment.name!r} is {environment.engine} "
            f"(it restores {engine.backup_format} backups); nothing was touched",
            hint="restore it into an environment of the same engine",
        )


def _open_backup(store: Store, name: str, engine: Engine, from_db: str | None,
                 keys: BackupKeys) -> Source:
    manifest = open_manifest(store, name, keys)
    check_compatible(manifest, engine)
    if from_db is not None and (from_db != manifest.database
                                or manifest.archive.format != ARCHIVE_FORMAT):
        if manifest.archive.format != ARCHIVE_FORMAT:
            raise UsageError("--from-db picks a database of a mongodump archive; a "
                             f"{manifest.engine} backup holds one database")
        raise UsageError(f"backup {name!r} holds only database {manifest.database!r}, "
                         f"not {from_db!r}")
    stream = open_checked(store, manifest, keys=keys)
    try:
        if manifest.archive.format != ARCHIVE_FORMAT:
            expected = {manifest.database: Item(manifest.database, None,
                                                manifest.archive.uncompressed_size,
                                                unit="database")}
            return Source("backup", stream, manifest.database, expected, stream,
                          manifest=manifest)
        checked = CheckedArchive(stream)
    except BaseException:
        stream.close()
        raise
    expected = {c.name: Item(c.name, c.documents, c.bytes) for c in manifest.collections}
    return Source("backup", checked, manifest.database, expected, stream, manifest=manifest)


def _open_file(path: Path, from_db: str | None,
               ceiling: tuple[str | int | None, str]) -> Source:
    what = f"the archive {path}"
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    try:
        limit, why = restore_ceiling(path.stat().st_size, *ceiling)
        plain = LimitedReader(open_decompressed_reader(stream), limit,
                              what=f"{what}, decompressed,", why=why, hint=CEILING_HINT)
        reader = ArchiveReader(plain)
        database = choose_database(reader.collections, from_db, what)
    except BaseException:
        stream.close()
        raise
    return Source("archive", reader, database, stream=stream)


def _open_directory(path: Path, from_db: str | None,
                    ceiling: tuple[str | int | None, str]) -> Source:
    everything = DirectoryReader(path)
    database = choose_database(everything.collections, from_db, f"the dump directory {path}")
    stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    limit = restore_ceiling(stored, *ceiling)
    return Source("directory", DirectoryReader(path, db=database, limit=limit), database)


def _open_legacy(opened: AbstractContextManager[BinaryIO], database: str, what: str,
                 from_db: str | None,
                 ceiling: tuple[str | int | None, str]) -> Source:
    if from_db is not None and from_db != database:
        raise UsageError(f"{what} holds one database ({database!r}); --from-db {from_db} "
                         "names another", hint="run the restore without --from-db")
    stack = ExitStack()
    try:
        file = stack.enter_context(opened)
        stored = file.seek(0, 2)
        file.seek(0)
        reader = ZipDumpReader(file, db=database, what=what,
                               limit=restore_ceiling(stored, *ceiling))
        stack.callback(reader.close)
    except BaseException:
        stack.close()
        raise
    expected = {name: Item(name, None, size) for name, size in reader.sizes().items()}
    return Source("legacy", reader, database, expected, stream=stack)
