"""Restoring a backup, or any mongodump archive or directory dump, into an environment.

The data flows one way: store (or file) → SHA-256 → decompression → archive reader (structure,
CRC-64) → the engine's staged restore (counts, indexes) → the swap. Everything that can be
checked is checked before the swap, so a bad archive never reaches the target; see
``docs/restore.md`` for the exact guarantee.

``BACKUP`` is a backup name (as ``list_backups`` shows it) or, when it is not shaped like one,
the path of a mongodump archive file (plain, gzip or zstd; recognised by its first bytes) or of
a ``mongodump --out`` directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from monarch.archive.events import CollectionEnd
from monarch.backups.progress import Item, NullProgress, Summary
from monarch.errors import ArchiveError, BackupError, BackupNotFound, UsageError

if TYPE_CHECKING:
    from monarch.archive.events import DumpReader, Event
    from monarch.archive.meta import CollectionMeta
    from monarch.backups.manifest import Manifest
    from monarch.backups.pipeline import HashingReader
    from monarch.backups.progress import Progress
    from monarch.config import Config, Environment
    from monarch.engines.base import CollectionRestored

SYSTEM_DATABASES = frozenset({"admin", "config", "local"})
"""Databases a whole-server dump carries besides the application's; never chosen by default."""


@dataclass(frozen=True)
class RestoreResult:
    """A finished restore. ``source`` is ``"backup"``, ``"archive"`` or ``"directory"``."""

    backup: str
    environment: str
    database: str
    source: str
    source_database: str
    collections: tuple[CollectionRestored, ...]
    dropped: tuple[str, ...]
    skipped: tuple[str, ...]
    recovered: str | None
    seconds: float

    @property
    def documents(self) -> int:
        """Documents restored, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def size(self) -> int:
        """Bytes of BSON documents restored."""
        return sum(c.bytes for c in self.collections)

    def summary(self) -> list[str]:
        """What the CLI prints: totals, then what was removed, skipped or recovered."""
        return summary_lines(self.collections, self.seconds, self.dropped, self.skipped,
                             self.recovered)


def summary_lines(
    collections: Sequence[CollectionRestored],
    seconds: float,
    dropped: Sequence[str],
    skipped: Sequence[str] = (),
    recovered: str | None = None,
) -> list[str]:
    """Human lines describing a restore or copy (shared by :class:`RestoreResult` and copy_db)."""
    from monarch.backups.progress import format_duration, format_size

    documents = sum(c.documents for c in collections)
    size = sum(c.bytes for c in collections)
    lines = []
    if recovered:
        lines.append(f"first: {recovered}")
    lines.append(f"{len(collections)} collection{'s' if len(collections) != 1 else ''}, "
                 f"{documents:,} documents, {format_size(size)} in {format_duration(seconds)}")
    if dropped:
        lines.append("removed (not in the backup): " + ", ".join(dropped))
    if skipped:
        lines.append("not restored (not data): " + ", ".join(skipped))
    return lines


def restore(
    config: Config,
    backup_name: str,
    env_name: str,
    *,
    from_db: str | None = None,
    confirm: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> RestoreResult:
    """Replace environment ``env_name``'s database with the backup ``backup_name``, exactly.

    ``backup_name`` is a backup in the store, or a path to a mongodump archive file or dump
    directory (see the module docstring). ``from_db`` picks the database of a dump that holds
    several; without it a dump with more than one application database is refused, listing
    them. ``confirm`` must name a protected environment. ``workers`` is the number of insertion
    threads (default: measured best for one server).

    Afterwards the database holds exactly the backup's collections, documents and indexes;
    collections not in the backup are gone. A corrupt archive, a refused index or any other
    failure raises before the swap, leaving the target as it was; a crash during the swap is
    finished by the next restore (or :func:`recover`). Raises :class:`BackupNotFound`,
    :class:`~monarch.errors.ArchiveError`, :class:`~monarch.errors.IndexRefused`,
    :class:`~monarch.errors.ConfirmationRequired` or another
    :class:`~monarch.errors.MonarchError`.
    """
    from monarch.engines import engine_for
    from monarch.safety import require_confirmation

    environment = config.environment(env_name)
    require_confirmation(environment, "restore", confirm)
    progress = progress or NullProgress()
    started = time.monotonic()
    with _open_source(config, backup_name, environment, from_db) as source:
        engine = engine_for(environment)
        try:
            stats = engine.restore_dump(
                source.reader, db=source.database,
                progress=_Announce(progress, "restore", source.expected), workers=workers,
            )
        except BaseException:
            progress.finish(None)
            raise
        finally:
            engine.close()
    seconds = time.monotonic() - started
    progress.finish(Summary("restore", len(stats.collections), stats.documents, stats.bytes,
                            seconds))
    return RestoreResult(
        backup=backup_name,
        environment=environment.name,
        database=environment.database,
        source=source.kind,
        source_database=source.database,
        collections=stats.collections,
        dropped=stats.dropped,
        skipped=stats.skipped,
        recovered=stats.recovered,
        seconds=seconds,
    )


def recover(config: Config, env_name: str, *, confirm: str | None = None) -> str | None:
    """Finish (or clean up after) a restore or copy into ``env_name`` that was interrupted.

    Returns what was done, or None when nothing was pending. Any restore or copy_db into the
    environment does this first by itself; this is for doing it without restoring again.
    """
    from monarch.engines import engine_for
    from monarch.safety import require_confirmation

    environment = config.environment(env_name)
    require_confirmation(environment, "recover", confirm)
    engine = engine_for(environment)
    try:
        return engine.recover_restore()
    finally:
        engine.close()


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


class _Source:
    """An opened dump: the reader, the database to take from it, and what to close."""

    def __init__(self, kind: str, reader: DumpReader, database: str,
                 expected: dict[str, Item] | None = None,
                 stream: BinaryIO | None = None) -> None:
        self.kind = kind
        self.reader = reader
        self.database = database
        self.expected = expected or {}
        self._stream = stream

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()


def _open_source(
    config: Config, name: str, environment: Environment, from_db: str | None
) -> _Source:
    from monarch.backups.naming import parse_name

    if parse_name(name) is not None:
        return _open_backup(config, name, environment, from_db)
    path = Path(name).expanduser()
    if path.is_dir():
        return _open_directory(path, from_db)
    if path.is_file():
        return _open_file(path, from_db)
    raise BackupNotFound(
        f"{name!r} is neither a backup name nor an existing mongodump archive or directory",
        hint="run `monarch list_backups` for backup names, or check the path",
    )


def _open_backup(
    config: Config, name: str, environment: Environment, from_db: str | None
) -> _Source:
    from monarch.archive.compression import METHODS, open_decompressed_reader
    from monarch.archive.reader import ArchiveReader
    from monarch.backups.catalog import read_manifest
    from monarch.backups.pipeline import HashingReader
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
    compression = manifest.archive.compression
    if compression not in METHODS:
        raise ArchiveError(f"backup {name!r}: its manifest names an unknown compression "
                           f"{compression!r}")
    try:
        raw = store.reader(manifest.archive.key)
    except ObjectNotFound:
        raise ArchiveError(f"backup {name!r}: its archive {manifest.archive.key} is missing "
                           "from the store") from None
    try:
        hashed = HashingReader(raw)
        reader = ArchiveReader(open_decompressed_reader(hashed, compression),
                               db=manifest.database)
        checked = _CheckedBackup(reader, manifest, hashed)
    except BaseException:
        raw.close()
        raise
    expected = {c.name: Item(c.name, c.documents, c.bytes) for c in manifest.collections}
    return _Source("backup", checked, manifest.database, expected, raw)


def _open_file(path: Path, from_db: str | None) -> _Source:
    from monarch.archive.reader import open_archive

    what = f"the archive {path}"
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    try:
        reader = open_archive(stream)
        database = choose_database(reader.collections, from_db, what)
    except BaseException:
        stream.close()
        raise
    return _Source("archive", reader, database, stream=stream)


def _open_directory(path: Path, from_db: str | None) -> _Source:
    from monarch.archive.directory import DirectoryReader

    everything = DirectoryReader(path)
    database = choose_database(everything.collections, from_db, f"the dump directory {path}")
    return _Source("directory", DirectoryReader(path, db=database), database)


class _CheckedBackup:
    """A backup's archive reader that also holds it to its manifest.

    The archive checks itself (structure, CRC-64 per collection); this adds what only the
    manifest knows: the same collections, their counts, bytes and CRCs, and, once the last
    event is read, the size and SHA-256 of the stored bytes. A mismatch raises
    :class:`ArchiveError` from the iteration, which the restore sees before its swap.
    """

    def __init__(self, reader: DumpReader, manifest: Manifest, hashed: HashingReader) -> None:
        from monarch.backups.verify import _compare_headers

        self._reader = reader
        self._manifest = manifest
        self._hashed = hashed
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


class _Announce:
    """Progress as the engine reports it, renamed (``copy_db``) and with expected sizes."""

    def __init__(self, inner: Progress, action: str, expected: dict[str, Item]) -> None:
        self._inner = inner
        self._action = action
        self._expected = expected

    def start(self, action: str, items: Sequence[Item]) -> None:
        self._inner.start(self._action, [self._expected.get(i.name, i) for i in items])

    def advance(self, item: str, documents: int, size: int) -> None:
        self._inner.advance(item, documents, size)

    def finish_item(self, item: str) -> None:
        self._inner.finish_item(item)

    def finish(self, summary: Summary | None) -> None:
        pass  # the caller closes the operation, once


def copy_db(config: Config, source_env: str, target_env: str, **options: Any) -> Any:
    """Copy one environment's database into another; see :func:`monarch.backups.copy.copy_db`."""
    from monarch.backups.copy import copy_db as run

    return run(config, source_env, target_env, **options)
