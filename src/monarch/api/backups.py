"""The backup commands: what ``monarch.backup(...)`` and the CLI call.

Each takes the loaded :class:`~monarch.config.Config` first, checks what can be checked from
the configuration alone (names, protection), opens the store and the engines once, hands them
to :mod:`monarch.backups` and closes them. Each raises a :class:`~monarch.errors.MonarchError`
on failure; none prints.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from monarch.api.locking import DEFAULT_LEASE, DEFAULT_TIMEOUT, check_lock_options, exclusive
from monarch.api.reporting import RunReport
from monarch.backups import backup as _backup_module
from monarch.backups import copy as _copy_module
from monarch.backups import restore as _restore_module
from monarch.backups.catalog import LEFTOVER_AGE, BackupInfo, scan
from monarch.backups.health import (
    DEFAULT_MAX_AGE,
    DEFAULT_MIN_RATIO,
    DEFAULT_WINDOW,
    HealthReport,
)
from monarch.backups.health import check_backups as _check_backups
from monarch.backups.keys import keys_for
from monarch.backups.legacy import LegacyBackup, legacy_among, list_legacy
from monarch.backups.naming import parse_name
from monarch.backups.notify import NotifyTarget
from monarch.backups.preview import RestorePreview
from monarch.backups.preview import preview as _preview
from monarch.backups.prune import DeleteResult, PruneResult
from monarch.backups.prune import delete_backup as _delete_backup
from monarch.backups.prune import prune as _prune
from monarch.backups.querysets import query_set_for
from monarch.backups.records import record_verify
from monarch.backups.retention import require_lockable, retention_policy
from monarch.backups.scratch import remove_leftovers
from monarch.backups.verify import VerifyResult
from monarch.backups.verify import verify as _verify
from monarch.backups.writer import BackupResult, compression_method
from monarch.engines import engine_for, registry
from monarch.engines.selection import described
from monarch.errors import ManifestError, StoreError, UsageError
from monarch.history import COPY_DB, DROP_DB, RECOVER, RESTORE
from monarch.progress import counted
from monarch.querysets import files as _querysets
from monarch.querysets.files import QuerySetInfo
from monarch.safety import require_confirmation
from monarch.sizes import parse_duration, parse_size
from monarch.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from monarch.backups.copy import CopyResult
    from monarch.backups.restore import RestoreResult
    from monarch.backups.retention import RetentionPolicy
    from monarch.config import Config, Environment
    from monarch.engines.base import Dropped, Engine
    from monarch.engines.selection import Selection
    from monarch.migrations.progress import Notices
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan
    from monarch.stores.base import Store


log = logging.getLogger("monarch.backups")


@contextmanager
def _engines(config: Config, *names: str, database: str | None = None,
             ) -> Iterator[list[Engine]]:
    """Engines for environments ``names`` (unconnected), closed afterwards whatever happens.

    ``database``: the last one is aimed at that database of its server instead of its own
    (``--database``; the same URL and credentials, see :meth:`Environment.with_database`).
    """
    with ExitStack() as stack:
        engines = []
        for index, name in enumerate(names):
            environment = config.environment(name)
            if database is not None and index == len(names) - 1:
                environment = environment.with_database(database)
            engine = engine_for(environment)
            stack.callback(engine.close)
            engines.append(engine)
        yield engines


def _ceiling(config: Config, max_size: str | int | None) -> tuple[str | int | None, str]:
    """The restore ceiling of a dump without a manifest, and where it was set."""
    if max_size is not None:
        return (max_size, "--max-size")
    configured = config.backups.options.get("max_restore_size")
    return (configured if isinstance(configured, str | int) else None,
            "[backups] max_restore_size")


def backup(
    config: Config,
    env_name: str,
    *,
    label: str | None = None,
    query_set: str | QueryPlan | None = None,
    compression: str | None = None,
    progress: Progress | None = None,
    parallel: int | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    notify: str | NotifyTarget | None = None,
) -> BackupResult:
    """Back up environment ``env_name``'s database into the backup store.

    Works for every engine: MongoDB databases are written as a mongodump archive, PostgreSQL
    and SQLite ones as their own tool's dump. ``label`` ends the name
    (``production-20260101T120000Z-<label>``); ``query_set`` (a name in ``querysets/``, a
    class-based query set's class name, or a loaded :class:`~monarch.querysets.plan.QueryPlan`)
    narrows and transforms what is dumped; ``compression`` is ``"zstd"``, ``"gzip"`` or
    ``"none"`` (default: the store's ``compression`` option, else gzip). Returns once the
    manifest is written: the backup then exists and is listed. On any error nothing is listed
    and the upload is aborted. With ``[backups] retain_days`` the archive and manifest are
    written locked for that many days (``lock_mode``); a store that cannot lock is refused.

    ``metrics_file`` (a path) records the run in Prometheus textfile format; ``notify`` (a
    webhook URL, else ``[backups] notify_url``) is sent a JSON event on failure (and on success
    with ``notify_on = ["failure", "success"]``). See :mod:`monarch.api.reporting`: neither
    can turn a successful backup into a failure. A store configured for encryption
    (``[backups] encrypt_to``, ``passphrase_env``) gets an encrypted backup or none
    (docs/security.md).
    """
    report = RunReport(config, "backup", env_name, metrics_file=metrics_file, notify_to=notify)
    try:
        method = compression_method(config, compression)
        keys = keys_for(config.backups)
        policy = retention_policy(config.backups.options)
        store = open_store(config.backups)
        require_lockable(store, policy)
        with _engines(config, env_name) as (engine,):
            # First, before the store is touched: a class-based query set runs on the database.
            plan = query_set_for(config, query_set, engine)
            result = _backup_module.backup(
                store, engine, compression=method, label=label,
                query_set=plan, progress=progress, parallel=parallel or 4, retain=policy,
                keys=keys,
            )
    except BaseException as exc:
        report.failed(exc)
        raise
    lock = result.retention
    report.finished(ok=True, size=result.size, documents=result.documents, backup=result.name,
                    locked_until=lock.until.isoformat() if lock else None)
    return result


def list_backups(config: Config, env: str | None = None) -> list[BackupInfo | LegacyBackup]:
    """The complete backups in the store (only ``env``'s when given), oldest first.

    Reads manifests and each backup's last verify and drill (``BackupInfo.checked``) only: no
    database is contacted. Backups without a manifest (unfinished or interrupted) are never
    listed; an unreadable manifest is skipped with a logged warning.
    Backups of monarch 0.0.x (``*.dmp.zip``) come as :class:`LegacyBackup` among them, by
    date; with ``env``, those named after its MongoDB database (as the original tool named them).
    """
    database = None
    if env is not None:
        environment = config.environment(env)  # unknown name: a clear error with known ones
        database = environment.database if legacy_backups_of(config, env) else None
    store = open_store(config.backups)
    catalog = scan(store, env, records=True)
    found: list[BackupInfo | LegacyBackup] = [*catalog.backups]
    if env is None:  # the whole store was listed once: its 0.0.x zips are in that listing
        found += legacy_among(catalog.others)
    elif database:
        found += list_legacy(store, database)
    return sorted(found, key=lambda b: b.created)


def legacy_backups_of(config: Config, env: str) -> bool:
    """Whether environment ``env`` can have backups of monarch 0.0.x (a MongoDB one)."""
    row = registry.by_name(config.environment(env).engine)
    return row is not None and row.legacy_backups


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
    selection: Selection | None = None,
    database: str | None = None,
    identity: str | Path | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Notices | None = None,
) -> RestoreResult:
    """Replace environment ``env_name``'s database with the backup ``backup_name``, exactly.

    ``backup_name`` is a backup in the store, or a path to a mongodump archive file or dump
    directory, or a backup of monarch 0.0.x. ``from_db`` picks the database of a dump that
    holds several. ``confirm`` must name a protected environment. ``workers`` is the number of
    insertion threads (default: measured best for one server). ``max_size`` (bytes, or a size
    such as ``"50G"``) caps what a dump without a manifest may decompress to (default:
    ``[backups] max_restore_size``, else 100 times its size on disk, at least 256 MiB).
    ``identity`` is the age identity file of an encrypted backup (default:
    ``$MONARCH_AGE_IDENTITY``, else ``[backups] identity``).

    Afterwards the database holds exactly the backup's collections, documents and indexes;
    collections not in the backup are gone. Any failure raises before the swap, leaving the
    target as it was; a crash during the swap is finished by the next restore (or
    :func:`recover`). See :func:`monarch.backups.restore.restore`.

    ``selection`` (a :class:`~monarch.engines.selection.Selection`) restores only some
    collections (tables), possibly renamed, leaving the rest of the database untouched.
    ``database`` restores into that database of the environment's server instead of its own,
    with the environment's URL and credentials; a protected environment still needs
    ``confirm``.

    The restore holds the environment's lock (as ``migrate`` does, :mod:`monarch.api.locking`;
    with ``database``, that database's): it waits up to ``lock_timeout`` seconds for a running
    migration or restore, and makes them wait. Once the backup is in place it is recorded in
    the history there; ``reporter`` hears a warning if that fails (the restore stays done).
    """
    environment = config.environment(env_name)
    check_lock_options(lock_timeout, lock_lease)
    require_confirmation(environment, "restore", confirm)
    keys = keys_for(config.backups, identity=identity)
    with _engines(config, env_name, database=database) as (engine,), exclusive(
        engine, env_name, f"restore {backup_name} {env_name}", lock_timeout=lock_timeout,
        lock_lease=lock_lease, notices=reporter,
    ) as held:
        picked = described(selection)
        entry = held.entry(
            RESTORE,
            lambda count: f"restored backup {backup_name} ({_restored(engine, count, picked)})",
            source=backup_name,
        )
        result = _restore_module.restore(
            open_store(config.backups), engine, backup_name, from_db=from_db,
            progress=progress, workers=workers, ceiling=_ceiling(config, max_size),
            selection=selection, keys=keys, audit=entry,
        )
        entry.record(engine, f"restored {result.backup} into {env_name!r}",
                     len(result.collections) or len(result.tables))
    return replace(result, other_database=_elsewhere(environment, database))


def _restored(engine: Engine, count: int, selection: str | None) -> str:
    """How much a restore or copy put in place, for its history entry: ``"3 tables"``."""
    what = _counted(engine, count)
    return f"{what} selected by {selection}" if selection else what


def _counted(engine: Engine, count: int) -> str:
    """``count`` collections (tables) of ``engine``'s database, in its own noun."""
    return counted(count, registry.noun_of(engine.environment.engine))


def restore_preview(
    config: Config,
    backup_name: str,
    env_name: str,
    *,
    from_db: str | None = None,
    max_size: str | int | None = None,
    selection: Selection | None = None,
    database: str | None = None,
    identity: str | Path | None = None,
) -> RestorePreview:
    """What :func:`restore` with the same arguments would replace, add and remove (per
    collection or table, counts before -> after), changing nothing (``restore --dry-run``).

    Needs no confirmation: it writes nothing. Refuses what the restore would refuse for its
    names. ``identity`` opens an encrypted backup, as for :func:`restore`. See
    :func:`monarch.backups.preview.preview`.
    """
    environment = config.environment(env_name)
    keys = keys_for(config.backups, identity=identity)
    with _engines(config, env_name, database=database) as (engine,):
        found = _preview(open_store(config.backups), engine, backup_name, from_db=from_db,
                         selection=selection, ceiling=_ceiling(config, max_size), keys=keys)
    return replace(found, other_database=_elsewhere(environment, database))


def _elsewhere(environment: Environment, database: str | None) -> bool:
    """Whether ``database`` (``--database``) is another than the environment's own."""
    return database is not None and database != environment.database


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
    selection: Selection | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Notices | None = None,
) -> CopyResult:
    """Replace ``target_env``'s database with ``source_env``'s, exactly, streaming.

    ``query_set`` narrows and transforms what is copied, as for a backup. ``keep_backup`` also
    stores the stream as a normal, listed backup of the source (``compression`` as for
    ``backup``). ``parallel`` collections are read at once; ``workers`` threads insert.
    ``confirm`` must name a protected target.

    Refuses a source and target that are the same environment, or the same database under two
    names (asked of the server, not judged from URLs), and environments of different engines.
    The target changes only in the final swap, as for a restore (docs/restore.md).
    ``selection`` copies only some collections (tables), possibly renamed, as for
    :func:`restore`. The copy holds the target's lock and is recorded in the target's history,
    as a restore is.
    """
    source_environment = config.environment(source_env)
    target_environment = config.environment(target_env)
    check_lock_options(lock_timeout, lock_lease)
    _copy_module.refuse_same(source_environment, target_environment)
    require_confirmation(target_environment, "copy_db into it", confirm)
    method = compression_method(config, compression)
    store: Store | None = None
    policy: RetentionPolicy | None = None
    keys = None
    if keep_backup:
        keys = keys_for(config.backups)
        policy = retention_policy(config.backups.options)
        store = open_store(config.backups)
        require_lockable(store, policy)
    with _engines(config, source_env, target_env) as (source, target):
        plan = None
        if query_set is not None:
            _backup_module.refuse_query_set(source, query_set, "a copy")
            source.server_info()  # an unreachable source fails as such, not as a query set
            plan = query_set_for(config, query_set, source)  # a class-based one runs there
        with exclusive(
            target, target_env, f"copy_db {source_env} {target_env}", lock_timeout=lock_timeout,
            lock_lease=lock_lease, notices=reporter,
        ) as held:
            picked = described(selection)
            entry = held.entry(
                COPY_DB,
                lambda count: f"copied environment {source_env} into it "
                f"({_restored(target, count, picked)})",
                source=source_env,
            )
            result = _copy_module.copy_db(
                source, target, query_set=plan,
                keep_backup_in=store, compression=method, progress=progress, parallel=parallel,
                workers=workers, retain=policy, selection=selection, keys=keys, audit=entry,
            )
            entry.record(target, f"copied {source_env!r} into {target_env!r}",
                         len(result.collections) or len(result.tables))
            return result


def verify(
    config: Config,
    name: str,
    *,
    progress: Progress | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    notify: str | NotifyTarget | None = None,
    identity: str | Path | None = None,
) -> VerifyResult:
    """Read backup ``name``'s whole archive from the store and check it against its manifest.

    Returns a result listing every problem found (a damaged backup is an answer, not an
    error). Raises :class:`~monarch.errors.BackupNotFound` if there is no such backup. No
    database is contacted. ``identity`` as for :func:`restore`: an encrypted backup is
    decrypted to be checked; an edited manifest (with ``[backups] manifest_key_env``) raises
    ManifestTampered. See :func:`monarch.backups.verify.verify`.

    The outcome is stored beside the backup (``NAME.verified.json``), where
    :func:`check_backups` finds it; a store that refuses that write only costs a warning.
    ``metrics_file`` and ``notify`` report the run as for :func:`backup` (a verify that finds
    problems is a failure).
    """
    parsed = parse_name(name)
    report = RunReport(config, "verify", parsed.environment if parsed else None,
                       metrics_file=metrics_file, notify_to=notify)
    try:
        keys = keys_for(config.backups, identity=identity)
        store = open_store(config.backups)
        try:
            result = _verify(store, name, progress=progress, keys=keys)
        except ManifestError as exc:  # a backup whose manifest is damaged failed its verify
            _record_quietly(store, VerifyResult(name, (str(exc),), 0, 0, 0, 0.0))
            raise
    except BaseException as exc:
        report.failed(exc)
        raise
    if not result.legacy:
        _record_quietly(store, result)
    report.finished(ok=result.ok, size=result.size, documents=result.documents,
                    backup=result.name, problems=list(result.problems[:20]))
    return result


def _record_quietly(store: Store, result: VerifyResult) -> None:
    try:
        record_verify(store, result.shareable())  # nothing sealed goes in the clear
    except (StoreError, ValueError) as exc:
        log.warning("warning: could not record the outcome of verify %s in the store: %s",
                    result.name, exc)


def check_backups(
    config: Config,
    env: str | Sequence[str] | None = None,
    *,
    max_age: str | float = DEFAULT_MAX_AGE,
    min_size: str | int | None = None,
    min_ratio: float = DEFAULT_MIN_RATIO,
    window: int = DEFAULT_WINDOW,
) -> HealthReport:
    """Are backups still happening? Judge the newest complete backup of ``env`` (a name or
    several; default: every environment that has backups in the store).

    Unhealthy when it finished more than ``max_age`` ago (seconds, or ``"26h"``, ``"2d"``...),
    its archive is smaller than ``min_size`` (bytes or ``"10MB"``), or smaller than
    ``min_ratio`` times the median of the ``window`` backups before it, or when the
    environment's last ``verify`` failed. Reads the store only: no database is contacted.
    Returns a :class:`~monarch.backups.health.HealthReport` (``.ok``, ``.failing``, each
    environment's one-line ``reason()``); see :mod:`monarch.backups.health`.
    """
    age = parse_duration(max_age, "--max-age")
    smallest = None if min_size is None else parse_size(min_size, "--min-size")
    if isinstance(min_ratio, bool) or not 0 <= min_ratio < 1:
        raise UsageError(f"--min-ratio must be at least 0 and below 1, not {min_ratio!r}")
    if isinstance(window, bool) or window < 1:
        raise UsageError(f"--window must be a positive number, not {window!r}")
    names = [env] if isinstance(env, str) else list(env) if env is not None else None
    for name in names or ():
        config.environment(name)  # a misspelt name: say so, rather than "no backup"
    return _check_backups(open_store(config.backups), names, max_age=age, min_size=smallest,
                          min_ratio=min_ratio, window=window)


def prune(
    config: Config,
    *,
    keep_last: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    env: str | None = None,
    dry_run: bool = False,
    leftover_age: float = LEFTOVER_AGE,
) -> PruneResult:
    """Delete the backups no rule keeps (only ``env``'s when given), then the leftovers.

    At least one ``keep_*`` rule is required: prune never deletes every backup by default.
    With ``dry_run`` nothing is deleted and the result says what would be. Backups of monarch
    0.0.x are never pruned (``delete_backup`` deletes one). Unfinished uploads and orphan
    archives older than ``leftover_age`` seconds are removed too. A backup the store still
    holds under a retention is left whole, in ``result.locked`` with its date.
    """
    return _prune(config, open_store(config.backups), keep_last=keep_last, keep_daily=keep_daily,
                  keep_weekly=keep_weekly, env=env, dry_run=dry_run, leftover_age=leftover_age)


def delete_backup(config: Config, name: str) -> DeleteResult:
    """Delete backup ``name``: its manifest first (it stops existing), then its archive.
    A backup under a retention raises :class:`~monarch.errors.BackupLocked` (naming the date)
    and nothing is deleted. See :func:`monarch.backups.prune.delete_backup`."""
    return _delete_backup(open_store(config.backups), name)


def drop_db(
    config: Config,
    env_name: str,
    *,
    confirm: str | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Notices | None = None,
) -> Dropped:
    """Drop environment ``env_name``'s database; return what was removed.

    ``confirm`` must be the environment's name if it is protected (else ConfirmationRequired,
    and nothing is done). What "drop" means depends on the engine (docs/backups.md): MongoDB
    drops the database, PostgreSQL replaces it by an empty one with the same owner, grants and
    settings, SQLite removes the file. A database that does not exist is no error.

    The drop holds the environment's lock, as ``migrate`` does, and is recorded in the
    environment's audit trail, which outlives it (docs/migrations.md, "History"), except on
    MongoDB, where the trail lives in the database and goes with it. PostgreSQL writes the
    entry into the empty database before swapping it in (the swap ends the lock's session):
    a drop that fails records nothing.
    """
    environment = config.environment(env_name)
    check_lock_options(lock_timeout, lock_lease)
    require_confirmation(environment, "drop_db", confirm)
    with _engines(config, env_name) as (engine,):
        engine.server_info()  # an unreachable server fails as such, before anything else
        takes = engine.capabilities.drop_takes_bookkeeping
        if takes and not engine.inventory():
            # Nothing to drop, and locking would create the database just to drop it again.
            return engine.drop()
        with exclusive(
            engine, env_name, f"drop_db {env_name}", lock_timeout=lock_timeout,
            lock_lease=lock_lease, notices=reporter,
        ) as held:
            if takes and held.lease is not None:
                held.lease.pause()  # a renewal after the drop would create the database again
            entry = held.entry(
                DROP_DB, lambda count: f"dropped the database ({_counted(engine, count)})"
            )
            dropped = engine.drop(audit=entry)
            if takes:
                if held.lease is not None:
                    held.lease.forget()  # the lock went with the database
            elif dropped.existed:
                entry.record(engine, f"dropped the database of {env_name!r}",
                             len(dropped.removed))
            return dropped


def recover(
    config: Config,
    env_name: str,
    *,
    confirm: str | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Notices | None = None,
) -> str | None:
    """Finish (or clean up after) a restore or copy into ``env_name`` that was interrupted.

    Returns what was done, or None when nothing was pending. Any restore or copy_db into the
    environment does this first by itself; this is for doing it without restoring again.
    Scratch databases that killed runs (``rehearse``, restore drills) left on the
    environment's server (SQLite: in its folder) are removed too; a live run's are left alone
    (see :mod:`monarch.backups.scratch`).
    It holds the environment's lock, and what it did is recorded in the history.
    """
    environment = config.environment(env_name)
    check_lock_options(lock_timeout, lock_lease)
    require_confirmation(environment, "recover", confirm)
    with _engines(config, env_name) as (engine,), exclusive(
        engine, env_name, f"recover {env_name}", lock_timeout=lock_timeout,
        lock_lease=lock_lease, notices=reporter,
    ) as held:
        done = _restore_module.recover(engine)
        if done is not None:
            held.record(
                engine, f"recovered {env_name!r}", lambda store: held.event(store, RECOVER, done)
            )
    removed = remove_leftovers(environment)
    if not removed:
        return done
    scratches = (f"removed {len(removed)} scratch database(s) a killed run left: "
                 f"{', '.join(removed)}")
    return f"{done}; {scratches}" if done else scratches


def generate_query_set(config: Config, name: str, *, force: bool = False) -> Path:
    """Write ``querysets/<name>.py``, a commented template; return its path."""
    return _querysets.generate_query_set(config, name, force=force)


def list_query_sets(config: Config) -> list[QuerySetInfo]:
    """The query sets in ``querysets/``: files, and classes based on ``monarch.QuerySet``."""
    return _querysets.list_query_sets(config)
