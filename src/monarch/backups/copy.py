"""copy_db: one environment's database streamed into another's, with the restore's safety.

    source engine ─ dump thread ─▶ bounded Pipe ─▶ ArchiveReader ─▶ target's staged restore
                          └─(--keep-backup) Tee ─▶ compress ─▶ SHA-256 ─▶ store upload

No temporary file: the archive exists only as the few megabytes in the pipe. The target is
loaded into staging and swapped in only once the whole stream is read and verified; with
``keep_backup`` the stored copy of the same stream is committed (archive, then manifest) just
before that swap, so the copy and its backup stand or fall together.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monarch.backups._pipe import Pipe, Tee
from monarch.engines.base import ARCHIVE_FORMAT
from monarch.errors import MonarchError, UsageError
from monarch.progress import NullProgress, Summary

if TYPE_CHECKING:
    from collections.abc import Sequence

    from monarch.archive.reader import ArchiveReader
    from monarch.backups.backup import BackupResult
    from monarch.config import Config, Environment
    from monarch.engines.base import CollectionRestored, DumpStats, Engine, StreamEngine
    from monarch.io import Writable
    from monarch.progress import Item, Progress
    from monarch.querysets.plan import QueryPlan

_LOCAL = {"localhost", "127.0.0.1", "::1", "[::1]"}


@dataclass(frozen=True)
class CopyResult:
    """A finished copy. ``backup`` is the kept backup (``keep_backup=True``), else None."""

    source: str
    target: str
    source_database: str
    database: str
    collections: tuple[CollectionRestored, ...]
    dropped: tuple[str, ...]
    recovered: str | None
    seconds: float
    backup: BackupResult | None = None
    format: str = ARCHIVE_FORMAT
    """The engine's backup format; for PostgreSQL and SQLite ``collections`` is empty and
    ``tables`` names what the target holds now."""
    tables: tuple[str, ...] = ()

    @property
    def documents(self) -> int:
        """Documents copied, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def size(self) -> int:
        """Bytes of BSON documents copied."""
        return sum(c.bytes for c in self.collections)

    def summary(self) -> list[str]:
        """What the CLI prints: totals, what was removed, and the kept backup."""
        from monarch.backups.restore import stream_summary_lines, summary_lines

        if self.format != ARCHIVE_FORMAT:
            lines = stream_summary_lines(self.tables, self.format, None, self.seconds,
                                         self.dropped, recovered=self.recovered)
        else:
            lines = summary_lines(self.collections, self.seconds, self.dropped, (),
                                  self.recovered)
        if self.backup is not None:
            lines.append(f"kept backup: {self.backup.name}")
        return lines


def copy_db(
    config: Config,
    source_env: str,
    target_env: str,
    *,
    query_set: str | QueryPlan | None = None,
    keep_backup: bool = False,
    confirm: str | None = None,
    progress: Progress | None = None,
    parallel: int | None = None,
    workers: int | None = None,
    compression: str | None = None,
) -> CopyResult:
    """Replace ``target_env``'s database with ``source_env``'s, exactly, streaming.

    ``query_set`` (a name in ``querysets/`` or a loaded one) narrows and transforms what is
    copied, as for a backup. ``keep_backup`` also stores the stream as a normal, listed backup
    of the source (``compression`` as for ``backup``). ``parallel`` collections are read at
    once; ``workers`` threads insert. ``confirm`` must name a protected target.

    Refuses a source and target that are the same environment, or the same database under two
    names (asked of the server, not judged from URLs), and environments of different engines.
    The target changes only in the final swap, as for a restore (docs/restore.md).
    """
    from monarch.backups.querysets import query_set_for
    from monarch.engines import engine_for
    from monarch.safety import require_confirmation

    source_environment = config.environment(source_env)
    target_environment = config.environment(target_env)
    _refuse_same(source_environment, target_environment)
    require_confirmation(target_environment, "copy_db into it", confirm)
    progress = progress or NullProgress()
    started = time.monotonic()
    source, target = engine_for(source_environment), engine_for(target_environment)
    if source.backup_format != ARCHIVE_FORMAT:
        from monarch.backups.streams import copy_database

        try:
            return copy_database(config, source, target, query_set=query_set,
                                 keep_backup=keep_backup, compression=compression,
                                 progress=progress)
        except BaseException:
            progress.finish(None)
            raise
        finally:
            source.close()
            target.close()
    try:
        source.server_info()  # an unreachable source fails before the target is touched
        qs = query_set_for(config, query_set, source)  # a class-based one runs on the source
        refuse_same_database(source, target)
        kept = _KeptBackup(config, source_environment, qs, compression) if keep_backup else None
        stream = _Stream(source, qs, parallel, progress, kept)
        try:
            stats = target.restore_dump(
                stream.reader(), db=source_environment.database,
                progress=_RestoreSide(progress), workers=workers, before_swap=stream.before_swap,
            )
        finally:
            stream.stop()
    except BaseException:
        progress.finish(None)
        raise
    finally:
        source.close()
        target.close()
    seconds = time.monotonic() - started
    progress.finish(Summary("copy_db", len(stats.collections), stats.documents, stats.bytes,
                            seconds))
    return CopyResult(
        source=source_env,
        target=target_env,
        source_database=source_environment.database,
        database=target_environment.database,
        collections=stats.collections,
        dropped=stats.dropped,
        recovered=stats.recovered,
        seconds=seconds,
        backup=stream.backup,
    )


def refuse_same_database(source: Engine | StreamEngine, target: Engine | StreamEngine) -> None:
    """Refuse two environments that reach the same database (asked of the server)."""
    if target.same_database(source):
        raise UsageError(
            f"environments {source.environment.name!r} and {target.environment.name!r} are "
            "the same database on the same server; nothing was copied",
            hint="point the two environments at different databases",
        )


def _refuse_same(source: Environment, target: Environment) -> None:
    if source.name == target.name:
        raise UsageError(f"copy_db from {source.name!r} to itself: FROM and TO must differ")
    if source.engine != target.engine:
        raise UsageError(
            f"copy_db cannot copy between engines: {source.name!r} is {source.engine}, "
            f"{target.name!r} is {target.engine}",
            hint="back up and restore through an export in a common format instead",
        )
    if source.database == target.database and _hosts(source) & _hosts(target):
        raise UsageError(
            f"environments {source.name!r} and {target.name!r} name the same database "
            f"{source.database!r} on {target.host}; nothing was copied",
            hint="point the two environments at different databases",
        )


def _hosts(environment: Environment) -> set[str]:
    """Hosts with default ports and loopback names folded together, for comparison."""
    found = set()
    for host in environment.hosts:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name or "]" in port:
            name, port = host, ""
        name = name.lower()
        found.add(f"{'localhost' if name in _LOCAL else name}:{port or '27017'}")
    return found


class _Stream:
    """The dump thread and the pipe it writes into (and the kept backup, if any)."""

    def __init__(self, source: Engine, query_set: QueryPlan | None, parallel: int | None,
                 progress: Progress, kept: _KeptBackup | None) -> None:
        self._source = source
        self._query_set = query_set
        self._parallel = parallel or 4
        self._progress = _DumpSide(progress)
        self._kept = kept
        self._pipe = Pipe()
        self._stats: DumpStats | None = None
        self._error: BaseException | None = None
        self.backup: BackupResult | None = None
        out: Writable = self._pipe if kept is None else Tee(self._pipe, kept.out)
        self._thread = threading.Thread(target=self._run, args=(out,), name="monarch-copy-dump",
                                        daemon=True)

    def reader(self) -> ArchiveReader:
        from monarch.archive.reader import ArchiveReader

        self._thread.start()
        return ArchiveReader(self._pipe)

    def _run(self, out: Writable) -> None:
        try:
            self._stats = self._source.dump_archive(
                out, query_set=self._query_set, progress=self._progress,
                parallel=self._parallel, action="copy_db",
            )
        except BaseException as exc:
            self._error = exc
            self._pipe.fail(exc)
        else:
            self._pipe.close()

    def before_swap(self) -> None:
        """All read and verified: the dump is over; commit the kept backup, if any."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._kept is not None and self._stats is not None:
            self.backup = self._kept.commit(self._stats)

    def stop(self) -> None:
        """Whatever happened: stop the dump thread, and drop an uncommitted backup."""
        self._pipe.close_reader()
        if self._thread.is_alive():
            self._thread.join()
        if self._kept is not None and self.backup is None:
            self._kept.abort()


class _KeptBackup:
    """copy_db's stream, also written to the store as a backup of the source."""

    def __init__(self, config: Config, environment: Environment, query_set: QueryPlan | None,
                 compression: str | None) -> None:
        from monarch.archive.compression import open_compressed_writer
        from monarch.backups.backup import _clean_leftovers, _compression, claim_name
        from monarch.backups.naming import archive_key, check_environment_name
        from monarch.backups.pipeline import CountingWriter, HashingWriter
        from monarch.stores import open_store

        check_environment_name(environment.name)
        self._environment = environment
        self._query_set = query_set
        self._method = _compression(
            compression if compression is not None else config.backups.options.get("compression"))
        self._store = open_store(config.backups)
        _clean_leftovers(self._store)
        self.started = datetime.now(UTC)
        self.name = claim_name(self._store, environment.name, None)
        self._key = archive_key(self.name, self._method)
        self._upload = self._store.writer(self._key, exclusive=True)
        self._hashed = HashingWriter(self._upload)
        self._compressed = open_compressed_writer(self._hashed, self._method)
        self.out = CountingWriter(self._compressed)

    def commit(self, dump: DumpStats) -> BackupResult:
        from monarch._version import __version__
        from monarch.backups.backup import BackupResult, _entry, _write_manifest, release_name
        from monarch.backups.manifest import ArchiveEntry, Manifest

        self._compressed.close()
        self._upload.commit()
        archive = ArchiveEntry(key=self._key, compression=self._method, size=self._hashed.size,
                               sha256=self._hashed.sha256, uncompressed_size=self.out.size)
        manifest = Manifest(
            name=self.name, monarch_version=__version__, environment=self._environment.name,
            engine=self._environment.engine, database=self._environment.database,
            source_host=self._environment.host, server_version=dump.server.version,
            server_details=dump.server.details, started_at=self.started,
            finished_at=datetime.now(UTC), label=None,
            query_set=self._query_set.name if self._query_set is not None else None,
            archive=archive, collections=tuple(_entry(c) for c in dump.collections),
        )
        try:
            _write_manifest(self._store, manifest)
        finally:
            release_name(self._store, self.name)
        return BackupResult(self.name, manifest, self._store.display_url)

    def abort(self) -> None:
        from monarch.backups.backup import release_name

        with contextlib.suppress(MonarchError):  # a leftover upload: the next backup removes it
            self._upload.abort()
        release_name(self._store, self.name)


class _DumpSide:
    """The dump's progress in a copy: its start (with estimated sizes) is the copy's start."""

    def __init__(self, inner: Progress) -> None:
        self._inner = inner

    def start(self, action: str, items: Sequence[Item]) -> None:
        self._inner.start("copy_db", items)

    def advance(self, item: str, documents: int, size: int) -> None:
        pass  # documents count when the target has them, not when they were read

    def finish_item(self, item: str) -> None:
        pass

    def finish(self, summary: Summary | None) -> None:
        pass


class _RestoreSide(_DumpSide):
    """The restore's progress in a copy: every insert, but not its start."""

    def start(self, action: str, items: Sequence[Item]) -> None:
        pass

    def advance(self, item: str, documents: int, size: int) -> None:
        self._inner.advance(item, documents, size)

    def finish_item(self, item: str) -> None:
        self._inner.finish_item(item)
