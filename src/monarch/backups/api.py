"""The public backup functions: what ``monarch.backup(...)`` and the CLI commands call.

Each takes the loaded :class:`~monarch.config.Config` first and raises a
:class:`~monarch.errors.MonarchError` on failure; none prints. ``restore`` and ``copy_db`` are
implemented in :mod:`monarch.backups.restore` and imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monarch.backups.backup import BackupResult, backup
from monarch.backups.catalog import BackupInfo
from monarch.backups.drop import drop_db
from monarch.backups.legacy import LegacyBackup
from monarch.backups.prune import DeleteResult, Kept, PruneResult, delete_backup, prune
from monarch.backups.verify import VerifyResult, verify
from monarch.querysets.files import QuerySetInfo, list_query_sets, load_query_set
from monarch.querysets.plan import QueryPlan

if TYPE_CHECKING:
    from pathlib import Path

    from monarch.backups.copy import CopyResult
    from monarch.backups.restore import RestoreResult
    from monarch.config import Config
    from monarch.progress import Progress


def list_backups(config: Config, env: str | None = None) -> list[BackupInfo | LegacyBackup]:
    """The complete backups in the store (only ``env``'s when given), oldest first.

    Reads manifests only: no database is contacted. Backups without a manifest (unfinished or
    interrupted) are never listed; an unreadable manifest is skipped with a logged warning.
    Backups of monarch 0.0.x (``*.dmp.zip``) come as :class:`LegacyBackup` among them, by
    date; with ``env``, those named after its MongoDB database (as the original tool named them).
    """
    from monarch.backups.catalog import scan
    from monarch.backups.legacy import list_legacy
    from monarch.stores import open_store

    database = None
    if env is not None:
        environment = config.environment(env)  # unknown name: a clear error with known ones
        database = environment.database if environment.engine == "mongo" else None
    store = open_store(config.backups)
    found: list[BackupInfo | LegacyBackup] = [*scan(store, env).backups]
    if env is None or database:
        found += list_legacy(store, database)
    return sorted(found, key=lambda b: b.created)


def generate_query_set(config: Config, name: str, *, force: bool = False) -> Path:
    """Write ``querysets/<name>.py``, a commented template; return its path."""
    from monarch.querysets.files import generate_query_set as generate

    return generate(config, name, force=force)


def restore(
    config: Config,
    backup_name: str,
    env_name: str,
    *,
    from_db: str | None = None,
    confirm: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> RestoreResult:
    """Restore a backup (or a mongodump archive or directory) into environment ``env_name``.

    Afterwards the target holds exactly the backup's collections, documents and indexes.
    See :func:`monarch.backups.restore.restore` for the guarantees and options.
    """
    from monarch.backups.restore import restore as _restore

    return _restore(
        config, backup_name, env_name, from_db=from_db, confirm=confirm, progress=progress,
        **options,
    )


def copy_db(
    config: Config,
    source_env: str,
    target_env: str,
    *,
    query_set: str | QueryPlan | None = None,
    keep_backup: bool = False,
    confirm: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> CopyResult:
    """Copy ``source_env``'s database into ``target_env``, streaming, with the restore's safety.

    See :func:`monarch.backups.restore.copy_db` for the guarantees and options.
    """
    from monarch.backups.copy import copy_db as _copy_db

    return _copy_db(
        config, source_env, target_env, query_set=query_set, keep_backup=keep_backup,
        confirm=confirm, progress=progress, **options,
    )


__all__ = [
    "BackupInfo",
    "BackupResult",
    "DeleteResult",
    "Kept",
    "LegacyBackup",
    "PruneResult",
    "QueryPlan",
    "QuerySetInfo",
    "VerifyResult",
    "backup",
    "copy_db",
    "delete_backup",
    "drop_db",
    "generate_query_set",
    "list_backups",
    "list_query_sets",
    "load_query_set",
    "prune",
    "restore",
    "verify",
]
