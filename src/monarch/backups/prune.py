"""Retention: which backups to keep (restic's rules), deleting the rest, and deleting one.

Rules apply to each environment separately, newest backup first, and a backup is kept if any
rule keeps it:

- ``keep_last N``: the N newest backups;
- ``keep_daily N``: for the N most recent days that have backups, the newest of each day;
- ``keep_weekly N``: the same per ISO week (Monday to Sunday).

Days and weeks are UTC, like backup names. A backup is deleted manifest first, so it stops
existing at once; then its archive. Prune also removes what killed runs left: orphan archives
(no manifest) and unfinished uploads older than an hour.

A backup the store holds under a retention (``[backups] retain_days``, S3 Object Lock) is not
deleted before the retention ends: prune keeps it and says until when (``locked``), and
``delete_backup`` refuses with :class:`~monarch.errors.BackupLocked`. Nothing of a locked backup
is touched, so it stays listed and restorable.

Backups of monarch 0.0.x (``*.dmp.zip``) are never pruned: the rules are for monarch's own
backups, and an old zip may be the only copy of something. Prune names the ones it left;
``delete_backup NAME`` deletes one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monarch.backups.catalog import LEFTOVER_AGE, BackupInfo, read_manifest, scan
from monarch.backups.legacy import (
    delete_legacy,
    find_legacy,
    legacy_key,
    list_legacy,
    parse_legacy_name,
)
from monarch.backups.naming import (
    archive_key,
    check_name,
    claim_key,
    manifest_key,
    verified_key,
)
from monarch.backups.retention import backup_lock
from monarch.engines import registry
from monarch.errors import BackupLocked, BackupNotFound, ManifestError, UsageError
from monarch.stores.base import ObjectLocked, ObjectNotFound, Retention

if TYPE_CHECKING:
    from monarch.config import Config
    from monarch.stores.base import Store


@dataclass(frozen=True)
class Kept:
    """A backup prune keeps, and the rules that keep it (``"last"``, ``"daily"``, ...)."""

    backup: BackupInfo
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Locked:
    """A backup no rule keeps that cannot be deleted yet: the store's retention holds it."""

    backup: BackupInfo
    retention: Retention

    @property
    def until(self) -> datetime:
        """When the backup can be deleted."""
        return self.retention.until


@dataclass(frozen=True)
class PruneResult:
    """What prune kept and removed (or, with ``dry_run``, would remove)."""

    kept: tuple[Kept, ...]
    removed: tuple[BackupInfo, ...]
    orphans: tuple[str, ...]
    """Keys of archives without a manifest removed (or that would be)."""
    leftovers: int
    """Unfinished uploads removed (not counted on a dry run)."""
    dry_run: bool
    legacy: tuple[str, ...] = ()
    """Backups of monarch 0.0.x in scope, left alone: prune never deletes them."""
    locked: tuple[Locked, ...] = ()
    """Backups no rule keeps, left whole because their retention has not ended."""
    locked_orphans: tuple[str, ...] = ()
    """Orphan archives left because their retention has not ended."""


@dataclass(frozen=True)
class DeleteResult:
    """What :func:`delete_backup` removed, in order."""

    name: str
    keys: tuple[str, ...]
    was_complete: bool
    """False when only an orphan archive (no manifest) was left to remove."""


def select(
    backups: Sequence[BackupInfo],
    *,
    keep_last: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
) -> tuple[list[Kept], list[BackupInfo]]:
    """Apply the rules to ``backups`` (grouped by environment); return (kept, to remove).

    Pure: nothing is read or deleted. Both lists are oldest first.
    """
    rules = _rules(keep_last, keep_daily, keep_weekly)
    groups: dict[str, list[BackupInfo]] = defaultdict(list)
    for info in backups:
        groups[info.environment].append(info)
    reasons: dict[str, list[str]] = defaultdict(list)
    for group in groups.values():
        newest_first = sorted(group, key=lambda b: (b.created, b.name), reverse=True)
        for rule, count, bucket in rules:
            seen: list[object] = []
            for info in newest_first:
                key = bucket(info.created)
                if seen and seen[-1] == key:
                    continue  # an older backup of a period already kept
                if len(seen) >= count:
                    break
                seen.append(key)
                reasons[info.name].append(rule)
    ordered = sorted(backups, key=lambda b: (b.created, b.name))
    kept = [Kept(b, tuple(reasons[b.name])) for b in ordered if b.name in reasons]
    removed = [b for b in ordered if b.name not in reasons]
    return kept, removed


def prune(
    config: Config,
    store: Store,
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
    With ``dry_run`` nothing is deleted and the result says what would be.
    """
    _rules(keep_last, keep_daily, keep_weekly)  # refuse a missing rule before any I/O
    catalog = scan(store, env)
    if env is not None and env not in config.environments and not catalog.backups:
        config.environment(env)  # a misspelt name: say so rather than prune nothing
    kept, removed = select(
        catalog.backups, keep_last=keep_last, keep_daily=keep_daily, keep_weekly=keep_weekly
    )
    orphans = [o.key for o in catalog.orphans(leftover_age)]
    legacy = list_legacy(store) if env is None else []
    if env is not None and env in config.environments:
        environment = config.environment(env)
        row = registry.by_name(environment.engine)
        if row is not None and row.legacy_backups:
            legacy = list_legacy(store, environment.database)
    locked: list[Locked] = []
    for info in list(removed):
        retention = backup_lock(store, _keys_of(info))
        if retention is not None:
            removed.remove(info)
            locked.append(Locked(info, retention))
    held = [key for key in orphans if backup_lock(store, [key]) is not None]
    orphans = [key for key in orphans if key not in held]
    leftovers = 0
    if not dry_run:
        for info in list(removed):
            try:
                _delete(store, info.name, info.manifest.archive.key)
            except ObjectLocked as exc:  # locked since we looked: left whole all the same
                removed.remove(info)
                locked.append(Locked(info, exc.retention))
        for key in orphans:
            try:
                store.delete(key)
            except ObjectNotFound:
                continue
            except ObjectLocked:
                held.append(key)
        orphans = [key for key in orphans if key not in held]
        leftovers = store.cleanup(leftover_age)
    locked.sort(key=lambda item: (item.backup.created, item.backup.name))
    return PruneResult(tuple(kept), tuple(removed), tuple(orphans), leftovers, dry_run,
                       tuple(b.name for b in legacy), tuple(locked), tuple(held))


def delete_backup(store: Store, name: str) -> DeleteResult:
    """Delete backup ``name``: its manifest first (it stops existing), then its archive.

    A backup whose manifest is already gone but whose archive remains (an interrupted delete
    or backup) has the archive removed; one whose manifest cannot be read (damaged, not
    JSON) is removed with whatever archive its name has. A backup of monarch 0.0.x (``NAME``
    or ``NAME.dmp.zip``) is its one zip. Raises :class:`~monarch.errors.BackupNotFound` when
    neither exists, and :class:`~monarch.errors.BackupLocked` (deleting nothing) when the
    store still holds any of its objects under a retention.
    """
    if parse_legacy_name(name) is not None:
        legacy = find_legacy(store, name)
        if legacy is None:
            raise BackupNotFound(f"no legacy backup {legacy_key(name)!r} in {store.display_url}",
                                 hint="run `monarch list_backups` to see the backups")
        return DeleteResult(legacy.name, (delete_legacy(store, legacy),), was_complete=True)
    check_name(name)
    try:
        manifest = read_manifest(store, name)
    except BackupNotFound:
        keys = [o.key for o in store.list(name + ".") if o.key != manifest_key(name)]
        keys = [k for k in keys if k in _archive_keys(name)]
        if not keys:
            raise
        _refuse_locked(store, name, keys)
        for key in keys:
            _delete_quietly(store, key)
        return DeleteResult(name, tuple(keys), was_complete=False)
    except ManifestError:
        # A manifest monarch cannot read (damaged, not JSON) does not name its archive, so
        # every archive the name may have goes with it: deleting is the way out of a broken
        # backup, and nothing could restore it anyway.
        keys = [manifest_key(name)] + [o.key for o in store.list(name + ".")
                                       if o.key in _archive_keys(name)]
        _refuse_locked(store, name, keys)
        for key in keys:
            _delete_quietly(store, key)
        return DeleteResult(name, tuple(keys), was_complete=False)
    _refuse_locked(store, name, [manifest_key(name), manifest.archive.key])
    try:
        deleted = _delete(store, name, manifest.archive.key)
    except ObjectLocked as exc:
        raise _locked_error(store, name, exc.retention) from exc
    return DeleteResult(name, deleted, was_complete=True)


def _keys_of(info: BackupInfo) -> list[str]:
    return [manifest_key(info.name), info.manifest.archive.key]


def _refuse_locked(store: Store, name: str, keys: list[str]) -> None:
    retention = backup_lock(store, keys)
    if retention is not None:
        raise _locked_error(store, name, retention)


def _locked_error(store: Store, name: str, retention: Retention) -> BackupLocked:
    return BackupLocked(
        f"backup {name!r} in {store.display_url} is locked until "
        f"{retention.until:%Y-%m-%d %H:%M:%S} UTC ({retention.mode} retention); nothing was "
        "deleted",
        until=retention.until, mode=retention.mode,
        hint="it can be deleted once its retention ends (retain_days in [backups] sets how "
             "long new backups are locked)",
    )


def _delete(store: Store, name: str, archive: str) -> tuple[str, ...]:
    _delete_quietly(store, manifest_key(name))
    _delete_quietly(store, archive)
    _delete_quietly(store, claim_key(name))  # left only by a run killed after its manifest
    _delete_quietly(store, verified_key(name))  # its last verify's outcome goes with it
    return manifest_key(name), archive


def _delete_quietly(store: Store, key: str) -> None:
    with suppress(ObjectNotFound):  # already gone: the goal is reached
        store.delete(key)


def _archive_keys(name: str) -> set[str]:
    return {archive_key(name, method, encrypted=sealed) for method in ("none", "gzip", "zstd")
            for sealed in (False, True)} | {claim_key(name), verified_key(name)}


_Rule = tuple[str, int, Callable[[datetime], object]]


def _rules(last: int | None, daily: int | None, weekly: int | None) -> list[_Rule]:
    rules: list[_Rule] = []
    for rule, count, bucket in (
        ("last", last, _each),
        ("daily", daily, _day),
        ("weekly", weekly, _week),
    ):
        if count is None:
            continue
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UsageError(f"--keep-{rule} must be a positive number, not {count!r}")
        rules.append((rule, count, bucket))
    if not rules:
        raise UsageError(
            "prune needs at least one rule saying what to keep; nothing was deleted",
            hint="e.g. monarch prune --keep-last 7 --keep-daily 14 --keep-weekly 8",
        )
    return rules


def _each(created: datetime) -> object:
    return created  # every backup is its own period


def _day(created: datetime) -> object:
    return created.astimezone(UTC).date()


def _week(created: datetime) -> object:
    iso = created.astimezone(UTC).isocalendar()
    return iso.year, iso.week
