"""Immutable backups: the retention a backup is written with, and reading it back.

``[backups] retain_days = 30`` (and ``lock_mode = "governance"`` or ``"compliance"``) writes
each backup's archive and manifest under a retention of that many days from the backup's start,
which the store itself enforces (S3 Object Lock): nobody using monarch's credentials, nor
monarch, can delete the backup before then. A store that cannot lock (a local folder) with
``retain_days`` set is a configuration error, never a silent backup without the lock.

``prune`` and ``delete_backup`` ask :func:`backup_lock` before deleting and leave a locked
backup whole, saying until when.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monarch.errors import ConfigError
from monarch.stores.base import LOCK_MODES, ObjectNotFound, Retention, Store

DEFAULT_LOCK_MODE = "governance"
"""The mode an administrator can still lift (with s3:BypassGovernanceRetention) if a retention
was set wrong; ``compliance`` is for those who want no way around it at all."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each new backup is locked, and in which mode."""

    days: int
    mode: str = DEFAULT_LOCK_MODE

    def retention_from(self, start: datetime) -> Retention:
        """The retention of a backup started at ``start``: ``days`` later, rounded up to the
        whole second (S3 keeps dates to the second), so what is reported is what is stored."""
        until = start + timedelta(days=self.days)
        if until.microsecond:
            until = until.replace(microsecond=0) + timedelta(seconds=1)
        return Retention(self.mode, until)


def retention_policy(options: Mapping[str, object]) -> RetentionPolicy | None:
    """Read ``retain_days`` and ``lock_mode`` from ``[backups]``; None when not configured.

    Raises ConfigError for a count that is not a positive whole number of days, an unknown
    mode, or a mode without a count.
    """
    days, mode = options.get("retain_days"), options.get("lock_mode")
    if days is None:
        if mode is not None:
            raise ConfigError("backups.lock_mode is set but backups.retain_days is not",
                              hint="add retain_days = 30 (days each backup stays locked)")
        return None
    text = str(days).strip()
    if isinstance(days, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"backups.retain_days must be a positive number of days, not {days!r}")
    chosen = DEFAULT_LOCK_MODE if mode is None else str(mode).lower()
    if chosen not in LOCK_MODES:
        raise ConfigError(f"backups.lock_mode must be one of {', '.join(LOCK_MODES)}, "
                          f"not {mode!r}")
    return RetentionPolicy(int(text), chosen)


def require_lockable(store: Store, policy: RetentionPolicy | None) -> None:
    """Refuse a retention on a store that cannot enforce one, before anything is written."""
    if policy is not None and not store.can_lock:
        raise ConfigError(
            f"backups.retain_days is set, but {store.display_url} cannot lock objects; "
            "a backup written there could be deleted at any time",
            hint="keep backups in an S3 bucket created with Object Lock, or remove retain_days "
                 "(and lock_mode) from [backups]",
        )


def backup_lock(store: Store, keys: Iterable[str],
                now: datetime | None = None) -> Retention | None:
    """The retention that still holds on any of a backup's objects ``keys`` (the one that ends
    last), or None when every one of them may be deleted now. Missing keys are skipped."""
    if not store.can_lock:
        return None
    found: Retention | None = None
    for key in keys:
        try:
            retention = store.retention(key)
        except ObjectNotFound:
            continue
        if (retention is not None and retention.holds(now)
                and (found is None or retention.until > found.until)):
            found = retention
    return found
