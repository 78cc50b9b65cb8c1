"""Backups whose archive is another tool's byte stream: PostgreSQL's ``pg_dump --format=custom``
and a SQLite database file (engines whose ``backup_format`` is not ``mongodump-archive``).

monarch never parses these streams. It stores them like any archive (compression, SHA-256,
size, the manifest written last: :mod:`monarch.backups.backup`), and on the way back holds the
stream to its manifest as it is read::

    store ─▶ SHA-256 + size ─▶ decompression ─▶ size ─▶ engine.restore (staging, then swap)

The check of the last bytes happens when the engine reads past them: a stream that does not
match its manifest raises from ``read``, inside the engine's restore and before its swap, so a
damaged backup never replaces anything. Each engine's restore is atomic by itself (PostgreSQL:
a scratch database renamed into place; SQLite: a staged file renamed over the old one).
"""

from __future__ import annotations

import importlib
import time
from typing import TYPE_CHECKING, BinaryIO, cast

from monarch.backups.legacy import is_legacy
from monarch.backups.naming import parse_name
from monarch.errors import ArchiveError, UsageError
from monarch.io import Buffer
from monarch.progress import Item, Summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from monarch.backups.backup import Dumped
    from monarch.backups.copy import CopyResult
    from monarch.backups.manifest import Manifest
    from monarch.backups.pipeline import HashingReader
    from monarch.backups.restore import RestoreResult
    from monarch.backups.verify import VerifyResult
    from monarch.config import Config, Environment
    from monarch.engines.base import Engine, StreamEngine, StreamRestored
    from monarch.io import Readable, Writable
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan
    from monarch.stores.base import Store

CHUNK = 1024 * 1024

# backup format -> ("module:function" reading a whole decompressed stream and returning the
# problems found, what that check is called)
_CHECKERS = {
    "pg_dump-custom": ("monarch.engines.postgres.backup:check_stream", "pg_restore reading it"),
    "sqlite3-database": ("monarch.engines.sqlite.backup:check_stream",
                         "SQLite's integrity check"),
}


def as_stream_engine(engine: Engine | StreamEngine) -> StreamEngine:
    """``engine``, whose ``backup_format`` says it is a :class:`StreamEngine`."""
    return cast("StreamEngine", engine)


def refuse_query_set(engine: Engine | StreamEngine, query_set: object, what: str) -> None:
    if query_set is not None:
        raise UsageError(
            f"query sets select MongoDB collections and documents; {what} of environment "
            f"{engine.environment.name!r} ({engine.name}) takes the whole database",
            hint="run it without --query-set",
        )


def stream_dumper(
    engine: Engine, query_set: QueryPlan | None, progress: Progress
) -> Callable[[Writable], Dumped]:
    """The dump of a stream engine, for :func:`monarch.backups.backup.backup`."""
    from monarch.backups.backup import Dumped
    from monarch.backups.manifest import CollectionEntry

    refuse_query_set(engine, query_set, "a backup")
    source = as_stream_engine(engine)

    def dump(out: Writable) -> Dumped:
        database = source.environment.database
        progress.start("backup", [Item(database, None, None, unit="database")])
        result = source.dump_stream(_Advancing(out, progress, database))
        progress.finish_item(database)
        entries = tuple(CollectionEntry(name=t.name, type="table", documents=t.rows,
                                        bytes=t.bytes, crc64=0) for t in result.tables)
        return Dumped(result.server, result.format, entries, result.tool_version)

    return dump


def restore_backup(
    config: Config,
    backup_name: str,
    environment: Environment,
    engine: Engine,
    progress: Progress,
) -> RestoreResult:
    """Restore backup ``backup_name`` into ``engine``'s database (a stream engine)."""
    from monarch.backups.catalog import read_manifest
    from monarch.backups.restore import RestoreResult
    from monarch.stores import open_store

    target = as_stream_engine(engine)
    if is_legacy(backup_name):
        raise UsageError(
            f"{backup_name!r} is a backup of monarch 0.0.x, a MongoDB dump; environment "
            f"{environment.name!r} is {environment.engine}, so nothing was restored",
            hint="restore it into a MongoDB environment",
        )
    if parse_name(backup_name) is None:
        raise UsageError(
            f"{backup_name!r} is not a backup name; a file or folder given as BACKUP is a "
            "mongodump dump, which restores into a MongoDB environment, and "
            f"{environment.name!r} is {environment.engine}",
            hint="run `monarch list_backups` for backup names",
        )
    store = open_store(config.backups)
    manifest = read_manifest(store, backup_name)
    check_compatible(manifest, environment, target.backup_format)
    started = time.monotonic()
    progress.start("restore", [Item(manifest.database, None, manifest.archive.uncompressed_size,
                                    unit="database")])
    with open_checked(store, manifest) as stream:
        result = target.restore(_Reporting(stream, progress, manifest.database))
    seconds = time.monotonic() - started
    progress.finish(Summary("restore", len(result.tables), 0, stream.plain, seconds,
                            unit="table"))
    return RestoreResult(
        backup=backup_name, environment=environment.name, database=environment.database,
        source="backup", source_database=manifest.database, collections=(),
        dropped=result.dropped, skipped=(), recovered=result.recovered, seconds=seconds,
        format=manifest.archive.format, tables=result.tables, stream_bytes=stream.plain,
    )


def check_compatible(manifest: Manifest, environment: Environment, backup_format: str) -> None:
    """Refuse a backup of another engine (or format) before anything is touched."""
    if manifest.engine != environment.engine or manifest.archive.format != backup_format:
        raise UsageError(
            f"backup {manifest.name!r} is a {manifest.archive.format} of a {manifest.engine} "
            f"database; environment {environment.name!r} is {environment.engine} "
            f"(it restores {backup_format} backups); nothing was touched",
            hint="restore it into an environment of the same engine",
        )


def copy_database(
    config: Config,
    source: Engine,
    target: Engine,
    *,
    query_set: str | QueryPlan | None,
    keep_backup: bool,
    compression: str | None,
    progress: Progress,
) -> CopyResult:
    """copy_db between two environments of a stream engine: ``source.copy_to(target)``.

    With ``keep_backup`` the copy is made as a backup of the source followed by a restore of
    that backup (the stream then passes through the store, checked like any restore).
    """
    from monarch.backups.copy import CopyResult, refuse_same_database

    refuse_query_set(source, query_set, "a copy")
    src, dst = as_stream_engine(source), as_stream_engine(target)
    src.server_info()  # an unreachable source fails before the target is touched
    refuse_same_database(src, dst)
    started = time.monotonic()
    kept = None
    result: StreamRestored
    if keep_backup:
        from monarch.backups.backup import backup

        kept = backup(config, src.environment.name, compression=compression)
        restored = restore_backup(config, kept.name, dst.environment, target, progress)
        tables, dropped, recovered = restored.tables, restored.dropped, restored.recovered
    else:
        progress.start("copy_db", [Item(src.environment.database, None, None, unit="database")])
        result = src.copy_to(dst)
        tables, dropped, recovered = result.tables, result.dropped, result.recovered
    seconds = time.monotonic() - started
    progress.finish(Summary("copy_db", len(tables), 0, 0, seconds, unit="table"))
    return CopyResult(
        source=src.environment.name, target=dst.environment.name,
        source_database=src.environment.database, database=dst.environment.database,
        collections=(), dropped=dropped, recovered=recovered, seconds=seconds, backup=kept,
        format=src.backup_format, tables=tables,
    )


def verify_stream(store: Store, manifest: Manifest, progress: Progress) -> VerifyResult:
    """Check an opaque archive: size and SHA-256 of the stored bytes, its decompression and
    uncompressed size, then its own tool's reading of it (pg_restore, SQLite's integrity
    check)."""
    from monarch.backups.verify import VerifyResult
    from monarch.stores.base import ObjectNotFound

    started = time.monotonic()
    archive = manifest.archive
    try:
        stream = open_checked(store, manifest, raise_on_mismatch=False)
    except ObjectNotFound:
        return VerifyResult(manifest.name, (f"the archive {archive.key} is missing",), 0, 0, 0,
                            time.monotonic() - started)
    progress.start("verify", [Item(manifest.database, None, archive.uncompressed_size,
                                   unit="database")])
    problems: list[str] = []
    with stream:
        checker, tool = _CHECKERS.get(archive.format, (None, "its own tool"))
        try:
            if checker is None:
                problems.append(f"unknown archive format {archive.format!r}")
            else:
                module, _, function = checker.partition(":")
                check: Callable[[Readable], list[str]] = getattr(
                    importlib.import_module(module), function)
                problems += check(_Reporting(stream, progress, manifest.database))
        except ArchiveError as exc:
            problems.append(f"archive: {exc.message}")
        problems += stream.finish()
    seconds = time.monotonic() - started
    tables = len(manifest.collections)
    progress.finish(Summary("verify", tables, manifest.documents, stream.hashed.size, seconds,
                            unit="table"))
    return VerifyResult(manifest.name, tuple(problems), tables, manifest.documents,
                        stream.hashed.size, seconds,
                        checked=f"size, SHA-256, uncompressed size and {tool}", unit="table")


class CheckedStream:
    """A stored archive, decompressed, held to its manifest: reading stops at the first byte
    beyond its sizes (:func:`~monarch.backups.pipeline.open_held`), and at the end of the
    stream (or on :meth:`finish`) its stored size and SHA-256 and its uncompressed size must
    match."""

    def __init__(self, raw: BinaryIO, manifest: Manifest, hashed: HashingReader,
                 plain: Readable, *, raise_on_mismatch: bool) -> None:
        self._raw = raw
        self._manifest = manifest
        self.hashed = hashed
        self._plain = plain
        self._raise = raise_on_mismatch
        self.plain = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._plain.read(size)
        self.plain += len(data)
        if not data and size != 0 and self._raise:
            problems = self.finish()
            if problems:
                raise ArchiveError(
                    f"backup {self._manifest.name!r} does not match its manifest: "
                    f"{'; '.join(problems)}; nothing was restored",
                    hint="the stored archive is damaged; restore another backup",
                )
        return data

    def finish(self) -> list[str]:
        """Read what is left of the stored bytes; what does not match the manifest."""
        archive = self._manifest.archive
        problems = []
        try:
            self.hashed.drain()
        except ArchiveError as exc:  # more stored bytes than the manifest says: stop there
            problems.append(exc.message)
        if self.hashed.size != archive.size:
            problems.append(f"size: the archive has {self.hashed.size} bytes, the manifest "
                            f"says {archive.size}")
        if self.hashed.sha256 != archive.sha256:
            problems.append(f"SHA-256: the archive hashes to {self.hashed.sha256}, the "
                            f"manifest says {archive.sha256}")
        if not problems and self.plain != archive.uncompressed_size:
            problems.append(f"uncompressed size: {self.plain} bytes, the manifest says "
                            f"{archive.uncompressed_size}")
        return problems

    def __enter__(self) -> CheckedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


def open_checked(store: Store, manifest: Manifest, *,
                 raise_on_mismatch: bool = True) -> CheckedStream:
    """Open ``manifest``'s archive as a :class:`CheckedStream` (ObjectNotFound if missing,
    when not raising on mismatches; ArchiveError otherwise)."""
    from monarch.backups.pipeline import open_held
    from monarch.stores.base import ObjectNotFound

    archive = manifest.archive
    try:
        raw = store.reader(archive.key)
    except ObjectNotFound:
        if not raise_on_mismatch:
            raise
        raise ArchiveError(f"backup {manifest.name!r}: its archive {archive.key} is missing "
                           "from the store; nothing was restored") from None
    try:
        hashed, plain = open_held(raw, manifest)
    except BaseException:
        raw.close()
        raise
    return CheckedStream(raw, manifest, hashed, plain, raise_on_mismatch=raise_on_mismatch)


class _Advancing:
    """A writer that reports the bytes passing through as progress."""

    def __init__(self, out: Writable, progress: Progress, item: str) -> None:
        self._out = out
        self._progress = progress
        self._item = item

    def write(self, data: Buffer, /) -> int:
        self._out.write(data)
        size = memoryview(data).nbytes
        self._progress.advance(self._item, 0, size)
        return size


class _Reporting:
    """A reader that reports the bytes passing through as progress."""

    def __init__(self, inp: Readable, progress: Progress, item: str) -> None:
        self._inp = inp
        self._progress = progress
        self._item = item

    def read(self, size: int = -1, /) -> bytes:
        data = self._inp.read(size)
        if data:
            self._progress.advance(self._item, 0, len(data))
        return data
