"""The restore drill command: what ``monarch.drill(...)`` and ``monarch verify NAME --restore``
call. See :mod:`monarch.backups.drill` for what a drill does and checks."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monarch.api.reporting import RunReport
from monarch.backups.catalog import open_manifest
from monarch.backups.checks import load_checks
from monarch.backups.drill import DrillResult
from monarch.backups.drill import drill as _drill
from monarch.backups.keys import keys_for
from monarch.backups.legacy import is_legacy
from monarch.backups.naming import check_name, parse_name
from monarch.backups.records import DrillRecord, VerifyRecord, read_verify, record_drill
from monarch.engines import registry
from monarch.errors import ManifestError, StoreError, UsageError
from monarch.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from monarch.backups.keys import BackupKeys
    from monarch.backups.manifest import Manifest
    from monarch.backups.notify import NotifyTarget
    from monarch.config import Config, Environment
    from monarch.progress import Progress
    from monarch.stores.base import Store

log = logging.getLogger("monarch.backups")


def drill(
    config: Config,
    name: str,
    *,
    into: str | None = None,
    keep: bool = False,
    progress: Progress | None = None,
    identity: str | Path | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    notify: str | NotifyTarget | None = None,
) -> DrillResult:
    """Restore backup ``name`` into a scratch database, check it, and remove the scratch.

    The scratch is a new database on the server of environment ``into`` (default: the backup's
    environment's ``drill_into`` setting, else that environment itself unless it is protected:
    a drill never writes to a protected server unless told to). The restored database is held
    to the backup's manifest (collections, counts), to its last drill (content digests), and to
    the project's checks (``checks/*.py``, see :mod:`monarch.backups.checks`). Returns a result
    listing every problem found: a backup that fails its drill is an answer, not an error.
    ``keep`` leaves the scratch database for inspection (``result.scratch`` names it).

    The outcome is stored beside the backup (``NAME.verified.json``: the last drill, which is
    also the last verify), where ``list_backups`` and ``check_backups`` find it; a store that
    refuses that write only costs a warning. Raises, recording nothing, what says nothing about
    the backup: an unknown or unreachable ``into``, one of another engine, a checks file that
    does not load (before anything is restored), a missing identity (``identity`` as for
    :func:`monarch.restore`). ``metrics_file`` and ``notify`` report the run as for
    :func:`monarch.backup` (a drill that finds problems is a failure).
    """
    if is_legacy(name):
        raise UsageError(f"{name!r} is a backup of monarch 0.0.x: it has no manifest to hold a "
                         "restore drill to", hint=f"check it with `monarch verify {name}`")
    parsed = parse_name(check_name(name))
    report = RunReport(config, "drill", parsed.environment if parsed else None,
                       metrics_file=metrics_file, notify_to=notify)
    try:
        keys = keys_for(config.backups, identity=identity)
        store = open_store(config.backups)
        manifest = _manifest(store, name, keys)
        target = drill_target(config, manifest, into)
        checks = load_checks(config.checks_dir, manifest.environment)
        result = _drill(store, manifest, target, checks=checks, keys=keys, progress=progress,
                        previous=_previous(store, name), keep=keep)
    except BaseException as exc:
        report.failed(exc)
        raise
    _record_quietly(store, name, result.record())
    report.finished(ok=result.ok, size=manifest.archive.size, documents=result.documents,
                    backup=name, into=result.into, problems=list(result.problems[:20]))
    return result


def drill_target(config: Config, manifest: Manifest, into: str | None) -> Environment:
    """The environment whose server a drill of ``manifest``'s backup restores on.

    ``into`` if given; else the backup's environment's ``drill_into``; else that environment
    itself if it is not protected. UsageError (with the way out) when none is allowed, or when
    the one chosen is of another engine than the backup.
    """
    source = config.environments.get(manifest.environment)
    if into is not None:
        target, where = config.environment(into), f"--into {into}"
    elif source is not None and source.drill_into:
        where = f"drill_into of [environments.{source.name}]"
        target = config.environment(source.drill_into)
    elif source is not None and not source.protected:
        target, where = config.environment(source.name), f"{source.name} (not protected)"
    else:
        why = (f"{manifest.environment} is protected ({source.protected_reason}), and a drill "
               "never writes to a protected server unless told to" if source is not None else
               f"its environment {manifest.environment!r} is not in this project's config")
        raise UsageError(
            f"a restore drill of {manifest.name} needs a server to restore it on: {why}",
            hint=f"name one: `monarch verify {manifest.name} --restore --into staging`, or set "
                 f'drill_into = "staging" under [environments.{manifest.environment}]')
    if target.engine != manifest.engine:
        backup_engine = registry.by_name(manifest.engine)
        target_engine = registry.by_name(target.engine)
        raise UsageError(
            f"{manifest.name} is a {backup_engine.display if backup_engine else manifest.engine}"
            f" backup, and {where} names a "
            f"{target_engine.display if target_engine else target.engine} environment",
            hint="drill it into an environment of the same engine: --into ENV")
    return target


def _previous(store: Store, name: str) -> VerifyRecord | None:
    """The backup's record so far; a damaged or unreadable one counts as none."""
    try:
        return read_verify(store, name)
    except (ManifestError, StoreError):
        return None


def _manifest(store: Store, name: str, keys: BackupKeys) -> Manifest:
    """Backup ``name``'s opened manifest; a damaged one fails the drill (recorded, as verify
    records it) and raises."""
    try:
        return open_manifest(store, name, keys)
    except ManifestError as exc:
        _record_quietly(store, name, DrillRecord(False, datetime.now(UTC), "-", 0.0, (str(exc),)))
        raise


def _record_quietly(store: Store, name: str, record: DrillRecord) -> None:
    try:
        record_drill(store, name, record)
    except (StoreError, ValueError) as exc:
        log.warning("warning: could not record the outcome of the drill of %s in the store: %s",
                    name, exc)
