"""copy_db: one environment's database streamed into another's, with the restore's safety.

    source engine ─ dump thread ─▶ bounded Pipe ─▶ target engine's staged restore
                          └─(--keep-backup) Tee ─▶ compress ─▶ SHA-256 ─▶ store upload

Every engine alike: ``source.dump`` writes its native stream into the pipe, ``target.restore``
reads it. No temporary file: the stream exists only as the few megabytes in the pipe. The
target is loaded into staging and swapped in only once the whole stream is read and verified; with
``keep_backup`` the stored copy of the same stream is committed (archive, then manifest) just
before that swap, so the copy and its backup stand or fall together.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monarch.backups._pipe import Pipe, Tee
from monarch.backups.backup import refuse_query_set
from monarch.backups.manifest import ARCHIVE_FORMAT, unit_of
from monarch.backups.writer import DEFAULT_COMPRESSION, BackupWriter
from monarch.engines import registry
from monarch.engines.selection import described
from monarch.errors import UsageError
from monarch.progress import NullProgress, Summary

if TYPE_CHECKING:
    from collections.abc import Sequence

    from monarch.archive.compression import Method
    from monarch.backups.keys import BackupKeys
    from monarch.backups.retention import RetentionPolicy
    from monarch.backups.writer import BackupResult
    from monarch.config import Environment
    from monarch.engines.base import CollectionRestored, DumpStats, Engine
    from monarch.engines.selection import Selection
    from monarch.history import AuditEntry
    from monarch.io import Writable
    from monarch.progress import Item, Progress
    from monarch.querysets.plan import QueryPlan
    from monarch.stores.base import Store

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
    selection: str | None = None
    """What a selective copy took; None when it copied the whole database."""

    @property
    def documents(self) -> int:
        """Documents copied, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def size(self) -> int:
        """Bytes of BSON documents copied."""
        return sum(c.bytes for c in self.collections)


def copy_db(
    source: Engine,
    target: Engine,
    *,
    query_set: QueryPlan | None = None,
    keep_backup_in: Store | None = None,
    compression: Method = DEFAULT_COMPRESSION,
    progress: Progress | None = None,
    parallel: int | None = None,
    workers: int | None = None,
    retain: RetentionPolicy | None = None,
    selection: Selection | None = None,
    keys: BackupKeys | None = None,
    audit: AuditEntry | None = None,
) -> CopyResult:
    """Replace ``target``'s database with ``source``'s, exactly, streaming.

    ``query_set`` narrows and transforms what is copied, as for a backup (for an engine that
    takes them). With ``keep_backup_in`` the stream is also written there as a normal, listed
    backup of the source (``compression``, ``retain`` and ``keys`` as for a backup), committed just
    before the swap. ``parallel`` collections are read at once; ``workers`` threads insert.
    ``audit`` makes the copy's audit entry, for a target engine that writes it with the data
    (see :meth:`~monarch.engines.base.Engine.restore`).

    Refuses the same database under two names (asked of the server, not judged from URLs).
    The target changes only in the final swap, as for a restore (docs/restore.md).

    A partial ``selection`` copies only what it selects, renamed as it says, every other
    collection (table) of the target untouched, as for a selective restore; the source then
    dumps only those, unless a kept backup needs the whole database.
    """
    progress = progress or NullProgress()
    started = time.monotonic()
    try:
        refuse_query_set(source, query_set, "a copy")
        source.server_info()  # an unreachable source fails before the target is touched
        refuse_same_database(source, target)
        keep = None if keep_backup_in is None else BackupWriter(
            keep_backup_in, source.environment, compression=compression,
            query_set=query_set.name if query_set is not None else None, retain=retain,
            keys=keys)
        dumped = selection if keep is None else None  # a kept backup is a whole one
        stream = _Stream(source, query_set, parallel, progress, keep, selection=dumped)
        try:
            stats = target.restore(
                stream.reader(), from_db=source.environment.database,
                progress=_RestoreSide(progress), workers=workers, before_swap=stream.before_swap,
                selection=selection, audit=audit,
            )
        finally:
            stream.stop()
    except BaseException:
        progress.finish(None)
        raise
    seconds = time.monotonic() - started
    unit = unit_of(source.backup_format)
    progress.finish(Summary("copy_db", len(stats.collections), stats.documents, stats.bytes,
                            seconds, unit=unit))
    opaque = unit == "table"
    return CopyResult(
        source=source.environment.name,
        target=target.environment.name,
        source_database=source.environment.database,
        database=target.environment.database,
        collections=() if opaque else stats.collections,
        dropped=stats.dropped,
        recovered=stats.recovered,
        seconds=seconds,
        backup=keep.committed if keep is not None else None,
        format=source.backup_format,
        tables=tuple(c.name for c in stats.collections) if opaque else (),
        selection=described(selection),
    )


def refuse_same_database(source: Engine, target: Engine) -> None:
    """Refuse two environments that reach the same database (asked of the server)."""
    if target.same_database(source):
        raise UsageError(
            f"environments {source.environment.name!r} and {target.environment.name!r} are "
            "the same database on the same server; nothing was copied",
            hint="point the two environments at different databases",
        )


def refuse_same(source: Environment, target: Environment) -> None:
    """Refuse a copy that cannot be right from the configuration alone: an environment into
    itself, across engines, or the same database on the same host."""
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
    row = registry.by_name(environment.engine)
    default = row.default_port if row is not None and row.default_port else ""
    found = set()
    for host in environment.hosts:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name or "]" in port:
            name, port = host, ""
        name = name.lower()
        found.add(f"{'localhost' if name in _LOCAL else name}:{port or default}")
    return found


class _Stream:
    """The dump thread and the pipe it writes into (and the kept backup, if any)."""

    def __init__(self, source: Engine, query_set: QueryPlan | None, parallel: int | None,
                 progress: Progress, keep: BackupWriter | None, *,
                 selection: Selection | None = None) -> None:
        self._source = source
        self._selection = selection
        self._query_set = query_set
        self._parallel = parallel or 4
        self._progress = _DumpSide(progress)
        self._keep = keep
        self._pipe = Pipe()
        self._stats: DumpStats | None = None
        self._error: BaseException | None = None
        out: Writable = self._pipe if keep is None else Tee(self._pipe, keep.out)
        self._thread = threading.Thread(target=self._run, args=(out,), name="monarch-copy-dump",
                                        daemon=True)

    def reader(self) -> Pipe:
        self._thread.start()
        return self._pipe

    def _run(self, out: Writable) -> None:
        try:
            self._stats = self._source.dump(
                out, query_set=self._query_set, progress=self._progress,
                parallel=self._parallel, action="copy_db", selection=self._selection,
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
        if self._keep is not None and self._stats is not None:
            self._keep.commit(self._stats, self._source.backup_format)

    def stop(self) -> None:
        """Whatever happened: stop the dump thread, and drop an uncommitted backup."""
        self._pipe.close_reader()
        if self._thread.is_alive():
            self._thread.join()
        if self._keep is not None:
            self._keep.abort()


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
