"""Where a restore reads from: a backup in the store, a backup of monarch 0.0.x (a zip, in the
store or a file: :mod:`monarch.backups.legacy`), or a mongodump archive file or directory.

``open_source`` turns the user's BACKUP argument into a :class:`Source`: the dump reader, the
database to take from it, the sizes to announce, and what to close. A backup's archive is held
to its manifest as it is read (:class:`CheckedBackup`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from monarch.archive.events import CollectionEnd
from monarch.errors import ArchiveError, BackupError, BackupNotFound, UsageError
from monarch.progress import Item

if TYPE_CHECKING:
    from monarch.archive.events import DumpReader, Event
    from monarch.archive.limits import LimitedReader
    from monarch.archive.meta import CollectionMeta
    from monarch.backups.manifest import Manifest
    from monarch.backups.pipeline import HashingReader
    from monarch.config import Config, Environment

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
    """An opened dump: the reader, the database to take from it, and what to close."""

    def __init__(self, kind: str, reader: DumpReader, database: str,
                 expected: dict[str, Item] | None = None,
                 stream: Closable | None = None) -> None:
        self.kind = kind
        self.reader = reader
        self.database = database
        self.expected = expected or {}
        self._stream = stream

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()


def open_source(
    config: Config, name: str, environment: Environment, from_db: str | None,
    max_size: str | int | None = None,
) -> Source:
    """Open BACKUP ``name``: a backup (held to its manifest's sizes), or a mongodump archive or
    directory (held to the restore ceiling: ``max_size``, else ``[backups] max_restore_size``,
    else :func:`~monarch.archive.limits.restore_ceiling`'s default)."""
    from monarch.backups.legacy import open_legacy_source
    from monarch.backups.naming import parse_name

    if parse_name(name) is not None:
        return _open_backup(config, name, environment, from_db)
    where = "--max-size"
    if max_size is None:
        max_size = config.backups.options.get("max_restore_size")  # type: ignore[assignment]
        where = "[backups] max_restore_size"
    legacy = open_legacy_source(config, name, from_db, max_size, where)
    if legacy is not None:
        return legacy
    path = Path(name).expanduser()
    if path.is_dir():
        return _open_directory(path, from_db, max_size, where)
    if path.is_file():
        return _open_file(path, from_db, max_size, where)
    raise BackupNotFound(
        f"{name!r} is neither a backup name nor an existing mongodump archive or directory",
        hint="run `monarch list_backups` for backup names, or check the path",
    )


def _open_backup(
    config: Config, name: str, environment: Environment, from_db: str | None
) -> Source:
    from monarch.archive.reader import ArchiveReader
    from monarch.backups.catalog import read_manifest
    from monarch.backups.pipeline import open_held
    from monarch.stores import open_store
    from monarch.stores.base import ObjectNotFound

    store = open_store(config.backups)
    manifest = read_manifest(store, name)
    if manifest.engine != environment.engine:
        raise UsageError(f"backup {name!r} is of a {manifest.engine} database; environment "
                         f"{environment.name!r} is {environment.engine}")
    if from_db is not None and from_db != manifest.database:
        raise UsageError(f"backup {name!r} holds only database {manifest.database!r}, "
                         f"not {from_db!r}")
    try:
        raw = store.reader(manifest.archive.key)
    except ObjectNotFound:
        raise ArchiveError(f"backup {name!r}: its archive {manifest.archive.key} is missing "
                           "from the store") from None
    try:
        hashed, plain = open_held(raw, manifest)
        reader = ArchiveReader(plain, db=manifest.database)
        checked = CheckedBackup(reader, manifest, hashed, plain)
    except BaseException:
        raw.close()
        raise
    expected = {c.name: Item(c.name, c.documents, c.bytes) for c in manifest.collections}
    return Source("backup", checked, manifest.database, expected, raw)


def _open_file(path: Path, from_db: str | None, max_size: str | int | None,
               where: str) -> Source:
    from monarch.archive.compression import open_decompressed_reader
    from monarch.archive.limits import CEILING_HINT, LimitedReader, restore_ceiling
    from monarch.archive.reader import ArchiveReader

    what = f"the archive {path}"
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    try:
        limit, why = restore_ceiling(path.stat().st_size, max_size, where)
        plain = LimitedReader(open_decompressed_reader(stream), limit,
                              what=f"{what}, decompressed,", why=why, hint=CEILING_HINT)
        reader = ArchiveReader(plain)
        database = choose_database(reader.collections, from_db, what)
    except BaseException:
        stream.close()
        raise
    return Source("archive", reader, database, stream=stream)


def _open_directory(path: Path, from_db: str | None, max_size: str | int | None,
                    where: str) -> Source:
    from monarch.archive.directory import DirectoryReader
    from monarch.archive.limits import restore_ceiling

    everything = DirectoryReader(path)
    database = choose_database(everything.collections, from_db, f"the dump directory {path}")
    stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    limit = restore_ceiling(stored, max_size, where)
    return Source("directory", DirectoryReader(path, db=database, limit=limit), database)


class CheckedBackup:
    """A backup's archive reader that also holds it to its manifest.

    The archive checks itself (structure, CRC-64 per collection); this adds what only the
    manifest knows: the same collections, their counts, bytes and CRCs, and, once the last
    event is read, the size and SHA-256 of the stored bytes. A mismatch raises
    :class:`ArchiveError` from the iteration, which the restore sees before its swap.
    """

    def __init__(self, reader: DumpReader, manifest: Manifest, hashed: HashingReader,
                 plain: LimitedReader) -> None:
        from monarch.backups.verify import _compare_headers

        self._reader = reader
        self._manifest = manifest
        self._hashed = hashed
        self._plain = plain
        problems = _compare_headers(manifest, reader.collections)
        if problems:
            raise _mismatch(manifest.name, problems)

    @property
    def header(self) -> dict[str, Any]:
        return self._reader.header

    @property
    def collections(self) -> list[CollectionMeta]:
        return self._reader.collections

    def __iter__(self) -> Iterator[Event]:
        from monarch.backups.verify import _compare_counts

        ends: dict[str, CollectionEnd] = {}
        for event in self._reader:
            if isinstance(event, CollectionEnd):
                ends[event.collection] = event
                problems = _compare_counts(self._manifest, {event.collection: event})
                if problems:
                    raise _mismatch(self._manifest.name, problems)
            yield event
        self._plain.finish()  # the decompressed stream reaches its manifest's size exactly
        self._hashed.drain()
        archive = self._manifest.archive
        if self._hashed.size != archive.size or self._hashed.sha256 != archive.sha256:
            raise ArchiveError(
                f"backup {self._manifest.name!r}: the archive's SHA-256 or size does not match "
                f"its manifest ({self._hashed.size} bytes hashing to {self._hashed.sha256}; the "
                f"manifest says {archive.size} bytes, {archive.sha256}); nothing was restored",
                hint="the stored archive is damaged; restore another backup",
            )


def _mismatch(name: str, problems: list[str]) -> ArchiveError:
    return ArchiveError(
        f"backup {name!r} does not match its manifest: {'; '.join(problems)}; nothing was "
        "restored",
        hint=f"run `monarch verify {name}`; restore another backup",
    )
