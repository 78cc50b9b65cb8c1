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

from monarch.archive.directory import EntriesReader
from monarch.backups.manifest import ARCHIVE_FORMAT, unit_of
from monarch.backups.sources import open_source
from monarch.backups.stored import CheckedStream
from monarch.engines.selection import described
from monarch.errors import ArchiveError, ConnectionFailed, MonarchError
from monarch.io import Readable
from monarch.progress import Item, NullProgress, Relabelled, Summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from monarch.backups.keys import BackupKeys
    from monarch.backups.sources import Source
    from monarch.engines.base import CollectionRestored, Engine
    from monarch.engines.selection import Selection
    from monarch.history import AuditEntry
    from monarch.progress import Progress
    from monarch.stores.base import Store


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
    selection: str | None = None
    """What a selective restore took (e.g. ``only users; orders as orders_old``); None when
    it restored the whole database."""
    other_database: bool = False
    """True when the target is another database of the environment's server (``--database``)
    than its own."""

    @property
    def documents(self) -> int:
        """Documents restored, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def size(self) -> int:
        """Bytes of BSON documents restored (of the dump stream, for other formats)."""
        return sum(c.bytes for c in self.collections) or self.stream_bytes


def restore(
    store: Store,
    engine: Engine,
    backup_name: str,
    *,
    from_db: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    ceiling: tuple[str | int | None, str] = (None, "--max-size"),
    selection: Selection | None = None,
    keys: BackupKeys | None = None,
    audit: AuditEntry | None = None,
) -> RestoreResult:
    """Replace ``engine``'s database with the backup ``backup_name``, exactly.

    ``backup_name`` is a backup in ``store``, or (for an engine that takes them) a backup of
    monarch 0.0.x or the path of a mongodump archive file or dump directory (see the module
    docstring). ``from_db`` picks the database of a dump that holds several; without it a dump
    with more than one application database is refused, listing them. ``workers`` is the
    number of insertion threads (default: measured best for one server). ``ceiling`` caps what
    a dump without a manifest may decompress to (a size, and where it was set); a backup is
    held to its manifest's sizes instead. Reading stops at the first byte beyond. ``keys``
    authenticate the manifest and decrypt an encrypted backup. ``audit`` makes the restore's
    audit entry, for an engine that writes it with the data (see
    :meth:`~monarch.engines.base.Engine.restore`).

    Afterwards the database holds exactly the backup's collections (tables), documents and
    indexes; those not in the backup are gone. A corrupt archive, a refused index or any other
    failure raises before the swap, leaving the target as it was; a crash during the swap is
    finished by the next restore (or ``recover``). A backup of another engine is refused before
    anything is touched.

    A partial ``selection`` (:mod:`monarch.engines.selection`) restores only what it selects,
    under its target names, each replaced atomically; everything else in the database stays
    as it was, and nothing is dropped.
    """
    progress = progress or NullProgress()
    started = time.monotonic()
    source = open_source(store, backup_name, engine, from_db, ceiling, keys=keys)
    with source:
        try:
            stats = engine.restore(
                source.input, from_db=source.database,
                progress=_Announce(progress, "restore", source.expected), workers=workers,
                selection=selection, audit=audit,
            )
        except MonarchError as exc:
            progress.finish(None)
            damage = _damage(source, engine, exc, lambda: open_source(
                store, backup_name, engine, from_db, ceiling, keys=keys))
            if damage is not None:
                raise damage from exc
            raise
        except BaseException:
            progress.finish(None)
            raise
    seconds = time.monotonic() - started
    backup_format = source.manifest.archive.format if source.manifest else ARCHIVE_FORMAT
    opaque = unit_of(backup_format) == "table"
    stream_bytes = source.input.plain if isinstance(source.input, CheckedStream) else 0
    progress.finish(Summary("restore", len(stats.collections), stats.documents,
                            stream_bytes if opaque else stats.bytes, seconds,
                            unit=unit_of(backup_format)))
    return RestoreResult(
        backup=backup_name,
        environment=engine.environment.name,
        database=engine.environment.database,
        source=source.kind,
        source_database=source.database,
        collections=() if opaque else stats.collections,
        dropped=stats.dropped,
        skipped=stats.skipped,
        recovered=stats.recovered,
        seconds=seconds,
        format=backup_format,
        tables=tuple(c.name for c in stats.collections) if opaque else (),
        stream_bytes=stream_bytes,
        selection=described(selection),
    )


def recover(engine: Engine) -> str | None:
    """Finish (or clean up after) a restore or copy into ``engine``'s database that was
    interrupted; say what was done, or None when nothing was pending."""
    return engine.recover_restore()


def _damage(source: Source, engine: Engine, failure: MonarchError,
            reopen: Callable[[], Source]) -> ArchiveError | None:
    """The damage in the dump, when that is what made the restore fail.

    Documents pass through undecoded, so a damaged one reaches the server, which may refuse it
    or drop the connection ("cannot reach") before the dump's own checks (an archive's CRC at
    the end of each collection) could say what is wrong. When the server still answers, the
    dump is read once more without it: a directory dump (no checksum) decoding every document,
    an archive or backup with all its checks; the first damage found is the answer.
    """
    reader = source.input
    if isinstance(reader, Readable):
        return None  # a stream the engine parses itself: its own error says what is wrong
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
            assert not isinstance(again.input, Readable)
            for _ in again.input:
                pass
    except ArchiveError as exc:
        return exc
    except MonarchError:
        return None
    return None


class _Announce(Relabelled):
    """Progress as the engine reports it, renamed (``copy_db``) and with expected sizes."""

    def __init__(self, inner: Progress, action: str, expected: dict[str, Item]) -> None:
        super().__init__(inner, action)
        self._expected = expected

    def start(self, action: str, items: Sequence[Item]) -> None:
        super().start(action, [self._announced(i) for i in items])

    def _announced(self, item: Item) -> Item:
        found = self._expected.get(item.name)
        if found is None and item.unit == "database" and len(self._expected) == 1:
            # A stream restored whole: the target's name, the backup's sizes.
            (only,) = self._expected.values()
            return Item(item.name, only.documents, only.size, unit=item.unit)
        return found or item

    def finish(self, summary: Summary | None) -> None:
        pass  # the caller closes the operation, once
