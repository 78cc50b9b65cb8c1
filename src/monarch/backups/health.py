"""Are the backups still happening? The rules of ``check_backups``.

An environment's backups are healthy when its newest complete backup (one with a manifest):

1. finished less than ``max_age`` ago;
2. is not too small: its archive is at least ``min_size`` bytes (when given) and at least
   ``min_ratio`` (default 0.5) of the median archive size of the up to ``window`` (default 5)
   complete backups before it, of the same environment and query set. A backup that suddenly
   halves is the sign of a dump that silently took less than it should (a wrong database, a
   filter, dropped collections);
3. and the last ``verify`` of any of the environment's backups did not fail.

``verify`` (and a restore drill, ``verify --restore``) leaves its outcome in the store beside
the backup, as ``NAME.verified.json`` (:mod:`monarch.backups.records`), so that
``check_backups`` (on another machine, say) can read it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monarch.backups.catalog import BackupInfo, scan
from monarch.backups.naming import VERIFIED_SUFFIX, parse_name
from monarch.backups.records import VerifyRecord, read_verify
from monarch.errors import ManifestError, StoreError
from monarch.progress import format_size

if TYPE_CHECKING:
    from monarch.stores.base import Store

__all__ = ["EnvironmentHealth", "HealthReport", "VerifyRecord", "check_backups", "format_age",
           "last_verify", "read_verify"]

DEFAULT_MAX_AGE = "26h"
"""A nightly backup, with two hours to spare."""
DEFAULT_MIN_RATIO = 0.5
DEFAULT_WINDOW = 5


def last_verify(store: Store, environment: str) -> VerifyRecord | None:
    """The most recent verify record of any of ``environment``'s backups (None if none)."""
    found = [
        obj for obj in store.list(f"{environment}-")
        if obj.key.endswith(VERIFIED_SUFFIX)
        and (owner := parse_name(obj.key[: -len(VERIFIED_SUFFIX)])) is not None
        and owner.environment == environment
    ]
    records = []
    # The newest few by write time, read to compare their own dates (clocks of other
    # machines wrote them); a damaged record counts as never written.
    for obj in sorted(found, key=lambda o: o.modified, reverse=True)[:3]:
        name = obj.key[: -len(VERIFIED_SUFFIX)]
        try:
            record = read_verify(store, name)
        except ManifestError:
            continue
        if record is not None:
            records.append(record)
    return max(records, key=lambda r: r.verified_at, default=None)


@dataclass(frozen=True)
class EnvironmentHealth:
    """One environment's verdict: healthy when ``problems`` is empty."""

    environment: str
    problems: tuple[str, ...]
    newest: BackupInfo | None = None
    age: float | None = None
    """Seconds since the newest backup finished."""
    median_size: float | None = None
    """Median archive size of the backups before the newest (None: no predecessor)."""
    last_verify: VerifyRecord | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        """The problems as one line."""
        return "; ".join(self.problems)


@dataclass(frozen=True)
class HealthReport:
    """What :func:`check_backups` found, environment by environment."""

    environments: tuple[EnvironmentHealth, ...]
    max_age: float
    min_size: int | None
    min_ratio: float
    store_url: str
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return bool(self.environments) and all(e.ok for e in self.environments)

    @property
    def failing(self) -> tuple[EnvironmentHealth, ...]:
        return tuple(e for e in self.environments if not e.ok)


def check_backups(
    store: Store,
    environments: Sequence[str] | None,
    *,
    max_age: float,
    min_size: int | None = None,
    min_ratio: float = DEFAULT_MIN_RATIO,
    window: int = DEFAULT_WINDOW,
    now: datetime | None = None,
) -> HealthReport:
    """Judge each of ``environments`` (None: every environment with backups in ``store``) by
    the rules of the module docstring. Reads manifests and verify records; no database."""
    now = now or datetime.now(UTC)
    if environments is None:
        catalog = scan(store)
        names = sorted({b.environment for b in catalog.backups})
        grouped = {n: [b for b in catalog.backups if b.environment == n] for n in names}
    else:
        grouped = {n: list(scan(store, n).backups) for n in dict.fromkeys(environments)}
    rules = _Rules(max_age, min_size, min_ratio, window)
    verdicts = tuple(_judge(store, name, backups, now, rules) for name, backups in grouped.items())
    if not verdicts:
        verdicts = (EnvironmentHealth("*", (f"no backups at all in {store.display_url}",)),)
    return HealthReport(verdicts, max_age, min_size, min_ratio, store.display_url, now)


@dataclass(frozen=True)
class _Rules:
    max_age: float
    min_size: int | None
    min_ratio: float
    window: int


def _judge(store: Store, environment: str, backups: list[BackupInfo], now: datetime,
           rules: _Rules) -> EnvironmentHealth:
    max_age, min_size, min_ratio, window = (rules.max_age, rules.min_size, rules.min_ratio,
                                            rules.window)
    if not backups:
        return EnvironmentHealth(environment, (f"no backup in {store.display_url}",))
    newest = backups[-1]  # oldest first
    problems: list[str] = []
    age = (now - newest.finished).total_seconds()
    if age > max_age:
        problems.append(f"newest backup {newest.name} finished {format_age(age)} ago "
                        f"(more than {format_age(max_age)})")
    if min_size is not None and newest.size < min_size:
        problems.append(f"newest backup {newest.name} is {format_size(newest.size)} "
                        f"(less than --min-size {format_size(min_size)})")
    before = [b.size for b in backups[:-1] if b.query_set == newest.query_set][-window:]
    median = float(statistics.median(before)) if before else None
    if median is not None and min_ratio > 0 and newest.size < min_ratio * median:
        problems.append(f"newest backup {newest.name} is {format_size(newest.size)}, less than "
                        f"{min_ratio:.0%} of the median of the {len(before)} before it "
                        f"({format_size(median)})")
    try:
        verified = last_verify(store, environment)
    except StoreError as exc:
        problems.append(f"cannot read the verify records: {exc}")
        verified = None
    if verified is not None and not verified.ok:
        first = verified.problems[0] if verified.problems else "no reason recorded"
        more = f" (and {len(verified.problems) - 1} more)" if len(verified.problems) > 1 else ""
        problems.append(f"the last verify, of {verified.name} at "
                        f"{verified.verified_at:%Y-%m-%d %H:%M} UTC, failed: {first}{more}")
    return EnvironmentHealth(environment, tuple(problems), newest, age, median, verified)


def format_age(seconds: float) -> str:
    """``40s``, ``12m``, ``26h 5m``, ``3d 4h``: a span as people read ages (hours up to two
    days, so that it reads like a ``--max-age 26h``)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400) if whole >= 2 * 86400 else (0, whole)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{secs}s"
