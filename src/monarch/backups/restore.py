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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monarch.backups.copy import CopyResult, copy_db
from monarch.backups.sources import SYSTEM_DATABASES, choose_database, open_source
from monarch.engines.base import ARCHIVE_FORMAT
from monarch.errors import ArchiveError, MonarchError, UsageError
from monarch.progress import Item, NullProgress, Summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from monarch.backups.sources import Source
    from monarch.config import Config
    from monarch.engines.base import CollectionRestored, Engine
    from monarch.progress import Progress

__all__ = [
    "SYSTEM_DATABASES",
    "CopyResult",
    "RestoreResult",
    "choose_database",
    "copy_db",
    "recover",
    "restore",
    "stream_summary_lines",
    "summary_lines",
]

@dataclass(frozen=True)
class RestoreResult:
    """A finished restore. ``source`` is ``"backup"``, ``"archive"``, ``"directory"`` or
    ``"legacy"`` (a backup of monarch 0.0.x)."""

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
    format: str = ARCHIVE_FORMAT
    """The backup's format; for other formats than a mongodump archive (PostgreSQL, SQLite)
    ``collections`` is empty and ``tables`` names what the database holds now."""
    tables: tuple[str, ...] = ()
    stream_bytes: int = 0
    """Bytes of the (uncompressed) dump stream restored, for formats other than an archive."""

    @property
    def documents(self) -> int:
        """Documents restored, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def size(self) -> int:
        """Bytes of BSON documents restored (of the dump stream, for other formats)."""
        return sum(c.bytes for c in self.collections) or self.stream_bytes

    def summary(self) -> list[str]:
        """What the CLI prints: totals, then what was removed, skipped or recovered."""
        if self.format != ARCHIVE_FORMAT:
            return stream_summary_lines(self.tables, self.format, self.stream_bytes,
                                        self.seconds, self.dropped, recovered=self.recovered)
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
    from monarch.progress import format_duration, format_size

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


def stream_summary_lines(
    tables: Sequence[str],
    format: str,
    size: int | None,
    seconds: float,
    dropped: Sequence[str],
    *,
    recovered: str | None = None,
) -> list[str]:
    """Human lines for a restore or copy of a PostgreSQL or SQLite database."""
    from monarch.progress import format_duration, format_size

    lines = [f"first: {recovered}"] if recovered else []
    through = f" from {format_size(size)} of {format}" if size else ""
    lines.append(f"{len(tables)} table{'s' if len(tables) != 1 else ''}{through} in "
                 f"{format_duration(seconds)}")
    if dropped:
        lines.append("removed (not in the source): " + ", ".join(dropped))
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
    max_size: str | int | None = None,
) -> RestoreResult:
    """Replace environment ``env_name``'s database with the backup ``backup_name``, exactly.

    ``backup_name`` is a backup in the store, or a path to a mongodump archive file or dump
    directory (see the module docstring). ``from_db`` picks the database of a dump that holds
    several; without it a dump with more than one application database is refused, listing
    them. ``confirm`` must name a protected environment. ``workers`` is the number of insertion
    threads (default: measured best for one server). ``max_size`` (bytes, or a size such as
    ``"50G"``) caps what a mongodump archive or directory may decompress to (default:
    ``[backups] max_restore_size``, else 100 times its size on disk, at least 256 MiB); a
    backup is held to its manifest's sizes instead. Reading stops at the first byte beyond.

    PostgreSQL and SQLite environments take only monarch backups of their own engine, restored
    by the engine's atomic swap (:mod:`monarch.backups.streams`); a backup of another engine is
    refused before anything is touched.

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
    engine = engine_for(environment)
    if engine.backup_format != ARCHIVE_FORMAT:
        from monarch.backups.streams import restore_backup

        try:
            if from_db is not None:
                raise UsageError("--from-db picks a database of a mongodump archive; a "
                                 f"{environment.engine} backup holds one database")
            return restore_backup(config, backup_name, environment, engine, progress)
        except BaseException:
            progress.finish(None)
            raise
        finally:
            engine.close()
    try:
        source = open_source(config, backup_name, environment, from_db, max_size)
    except BaseException:
        engine.close()
        raise
    with source:
        try:
            stats = engine.restore_dump(
                source.reader, db=source.database,
                progress=_Announce(progress, "restore", source.expected), workers=workers,
            )
        except MonarchError as exc:
            progress.finish(None)
            damage = _damage(source, engine, exc, lambda: open_source(
                config, backup_name, environment, from_db, max_size))
            if damage is not None:
                raise damage from exc
            raise
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


def _damage(source: Source, engine: Engine, failure: MonarchError,
            reopen: Callable[[], Source]) -> ArchiveError | None:
    """The damage in the dump, when that is what made the restore fail.

    Documents pass through undecoded, so a damaged one reaches the server, which may refuse it
    or drop the connection ("cannot reach") before the dump's own checks (an archive's CRC at
    the end of each collection) could say what is wrong. When the server still answers, the
    dump is read once more without it: a directory dump (no checksum) decoding every document,
    an archive or backup with all its checks; the first damage found is the answer.
    """
    from monarch.archive.directory import EntriesReader
    from monarch.errors import ConnectionFailed

    reader = source.reader
    directory = reader if isinstance(reader, EntriesReader) else None
    if isinstance(failure, ArchiveError) or (directory is None
                                              and not isinstance(failure, ConnectionFailed)):
        return None
    try:
        engine.server_info()
    except MonarchError:
        return None  # the server is truly gone: that is the answer
    if directory is not None:
        return directory.find_damage()
    try:
        with reopen() as again:
            for _ in again.reader:
                pass
    except ArchiveError as exc:
        return exc
    except MonarchError:
        return None
    return None


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
