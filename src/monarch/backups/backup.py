"""Taking a backup: engine dump -> compression -> SHA-256 -> store upload, then the manifest.

Written once for every engine over :meth:`monarch.engines.base.Engine.dump` and
:class:`~monarch.backups.writer.BackupWriter`, which keeps the ordering guarantee (the
manifest, written last, is what makes a backup exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monarch.backups.manifest import unit_of
from monarch.backups.writer import BackupResult, BackupWriter
from monarch.errors import UsageError
from monarch.progress import NullProgress, Summary

if TYPE_CHECKING:
    from monarch.archive.compression import Method
    from monarch.backups.keys import BackupKeys
    from monarch.backups.retention import RetentionPolicy
    from monarch.engines.base import Engine
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan
    from monarch.stores.base import Store


def backup(
    store: Store,
    engine: Engine,
    *,
    compression: Method,
    label: str | None = None,
    query_set: QueryPlan | None = None,
    progress: Progress | None = None,
    parallel: int = 4,
    retain: RetentionPolicy | None = None,
    keys: BackupKeys | None = None,
) -> BackupResult:
    """Back up ``engine``'s database into ``store``; return once the manifest is written.

    On any error (or interrupt) nothing is listed and the upload is aborted. The server is
    asked first, so an unreachable one fails before the store is touched. With ``retain``,
    archive and manifest are written locked for that many days (the store must be able to
    lock: see :func:`monarch.backups.retention.require_lockable`). ``keys``: the store's
    encryption and manifest keys (keys.keys_for); a store that encrypts gets an encrypted
    backup or none.
    """
    progress = progress or NullProgress()
    refuse_query_set(engine, query_set, "a backup")
    try:
        engine.server_info()
        with BackupWriter(store, engine.environment, compression=compression, label=label,
                          query_set=query_set.name if query_set is not None else None,
                          retain=retain, keys=keys) as writer:
            stats = engine.dump(writer.out, query_set=query_set, progress=progress,
                                parallel=parallel)
            result = writer.commit(stats, engine.backup_format)
    except BaseException:
        progress.finish(None)
        raise
    manifest = result.manifest
    progress.finish(Summary("backup", len(manifest.collections), manifest.documents,
                            manifest.data_bytes, manifest.duration,
                            unit=unit_of(manifest.archive.format)))
    return result


def refuse_query_set(engine: Engine, query_set: object, what: str) -> None:
    """Refuse a query set for an engine whose dumps take the whole database."""
    if query_set is not None and not engine.capabilities.query_sets:
        raise UsageError(
            f"query sets select MongoDB collections and documents; {what} of environment "
            f"{engine.environment.name!r} ({engine.name}) takes the whole database",
            hint="run it without --query-set",
        )
