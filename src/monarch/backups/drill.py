"""Restore drills: a backup restored into a scratch database, held to what it recorded and to
the project's own checks, the scratch removed whatever happens.

    manifest ─▶ a scratch database on INTO's server ─▶ restore through the checked reader
    (size, SHA-256; a mongodump archive's CRC-64 and counts, collection by collection)
    ─▶ the restored database against the manifest (collections and counts, where the manifest
    counts exactly) and against the backup's last drill (each collection's content digest)
    ─▶ ``checks/*.py`` (:mod:`monarch.backups.checks`) ─▶ scratch removed

A backup that fails its drill is an answer, not an error: a restore refused because the stored
archive does not match its manifest, or that the server refuses, counts that differ, content
that changed since the last drill, a check that raises: each is a problem of the result, which
the caller records beside the backup (:mod:`monarch.backups.records`). What says nothing about
the backup raises, and nothing is recorded: a server that cannot be reached, a missing identity,
a checks file that does not load (loaded before the scratch is made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monarch.backups.checks import run_checks
from monarch.backups.manifest import unit_of
from monarch.backups.records import CollectionPrint, DrillRecord, sealed
from monarch.backups.restore import restore
from monarch.backups.scratch import scratch
from monarch.engines import registry
from monarch.errors import ArchiveError, BackupError, EncryptionError, RestoreBusy
from monarch.history import BOOKKEEPING

if TYPE_CHECKING:
    from monarch.backups.checks import Check
    from monarch.backups.keys import BackupKeys
    from monarch.backups.manifest import Manifest
    from monarch.backups.records import CheckOutcome, VerifyRecord
    from monarch.config import Environment
    from monarch.engines.base import Engine
    from monarch.progress import Progress
    from monarch.stores.base import Store


@dataclass(frozen=True)
class DrillResult:
    """The outcome of :func:`drill`: ``ok`` when ``problems`` is empty (a failed check is one
    of them)."""

    name: str
    into: str
    """The environment whose server held the scratch database."""
    scratch: str
    """The scratch database's name (removed by the time the result is returned, unless
    ``kept``)."""
    problems: tuple[str, ...]
    collections: tuple[CollectionPrint, ...]
    """What the scratch held once restored, collection by collection."""
    checks: tuple[CheckOutcome, ...]
    seconds: float
    unit: str = "collection"
    compared: tuple[str, ...] = ()
    """What the restored database was held to, for the report."""
    encrypted: bool = False
    kept: bool = False
    """The scratch database was left for inspection (``keep``)."""

    @property
    def ok(self) -> bool:
        """Whether the backup passed its drill."""
        return not self.problems

    @property
    def documents(self) -> int:
        """Documents (rows) restored, all collections together."""
        return sum(c.count for c in self.collections)

    def record(self, at: datetime | None = None) -> DrillRecord:
        """This result as stored beside the backup (an encrypted one's without what its
        manifest seals)."""
        record = DrillRecord(self.ok, at or datetime.now(UTC), self.into, self.seconds,
                             self.problems, self.collections, self.checks)
        return sealed(record, self.name) if self.encrypted else record


def drill(store: Store, manifest: Manifest, into: Environment, *, checks: tuple[Check, ...] = (),
          keys: BackupKeys | None = None, progress: Progress | None = None,
          previous: VerifyRecord | None = None, keep: bool = False) -> DrillResult:
    """Restore the backup ``manifest`` describes into a new scratch database on ``into``'s
    server, check it, run ``checks`` on it, and remove it (also on failure or interrupt).

    ``previous``: the backup's record, whose last drill's digests the restored content must
    match. ``keep`` leaves the scratch database for inspection (named ``monarch_kept_...``,
    see :mod:`monarch.backups.scratch`). Raises what says nothing about the backup (see the
    module docstring).
    """
    started = time.monotonic()
    unit = unit_of(manifest.archive.format)
    problems: list[str] = []
    prints: tuple[CollectionPrint, ...] = ()
    outcomes: tuple[CheckOutcome, ...] = ()
    compared: list[str] = []
    with scratch(into, keep=keep, purpose=f"restore drill of {manifest.name}") as made:
        engine = made.engine
        try:
            restored = restore(store, engine, manifest.name, progress=progress, keys=keys)
        except (EncryptionError, RestoreBusy):
            raise
        except (ArchiveError, BackupError) as exc:
            problems.append(f"the restore failed: {exc.message}")
        else:
            prints = fingerprint(engine)
            compared.append("the stored archive's size and SHA-256" + (
                ", each collection's CRC-64 as it was read" if unit == "collection" else ""))
            problems += _against_manifest(manifest, prints, restored.skipped, compared)
            problems += _against_last_drill(previous, prints, compared)
            outcomes = run_checks(checks, primary_database(engine))
            problems += [f"check {o.name} failed: {o.error}" for o in outcomes if not o.ok]
    return DrillResult(manifest.name, into.name, made.name, tuple(problems), prints, outcomes,
                       time.monotonic() - started, unit, tuple(compared),
                       encrypted=manifest.encryption is not None, kept=keep)


def _against_manifest(manifest: Manifest, prints: tuple[CollectionPrint, ...],
                      skipped: tuple[str, ...], compared: list[str]) -> list[str]:
    """The restored collections against the manifest's: the same ones, the same counts (for
    an engine whose manifests count exactly; else only nothing that the backup did not have)."""
    row = registry.by_name(manifest.engine)
    exact = row is None or row.exact_counts
    noun = registry.noun_of(manifest.engine)
    found = {p.name: p.count for p in prints}
    entries = {c.name: c for c in manifest.collections
               if c.name not in skipped and not _bookkeeping(c.name)}
    problems = [f"{noun} {name} is in the restored database but not in the backup's manifest"
                for name in sorted(set(found) - set(entries))]
    recorded = {name: c.documents for name, c in entries.items()
                if c.type in ("collection", "table")}  # a view's count is not its own
    if not exact:
        compared.append(f"the {noun}s against the manifest (its counts are estimates)")
        return problems
    compared.append(f"{noun}s and counts against the manifest")
    problems += [f"{noun} {name} is in the backup's manifest but not in the restored database"
                 for name in sorted(set(entries) - set(found))]
    problems += [f"{noun} {name}: {found[name]:,} restored, the manifest records "
                 f"{recorded[name]:,}" for name in sorted(set(recorded) & set(found))
                 if found[name] != recorded[name]]
    return problems


def _bookkeeping(name: str) -> bool:
    """Whether ``name`` (``schema.table`` on PostgreSQL) is monarch's own bookkeeping, which
    fingerprints leave out (:data:`monarch.history.BOOKKEEPING`)."""
    return name in BOOKKEEPING or name.partition(".")[2] in BOOKKEEPING


def _against_last_drill(previous: VerifyRecord | None, prints: tuple[CollectionPrint, ...],
                        compared: list[str]) -> list[str]:
    """Each collection's content digest against the one the backup's last drill recorded: the
    same backup restores to the same data, every time."""
    last = previous.drill if previous is not None else None
    before = {c.name: c.digest for c in last.collections if c.digest} if last else {}
    if not before:
        return []
    when = f"{last.drilled_at:%Y-%m-%d %H:%M} UTC" if last else ""
    compared.append(f"content digests against the drill of {when}")
    changed = sorted(p.name for p in prints if p.name in before and p.digest
                     and before[p.name] != p.digest)
    return [f"the content of {name} differs from what the drill of {when} restored"
            for name in changed]


def fingerprint(engine: Engine) -> tuple[CollectionPrint, ...]:
    """Each collection's count and content digest, as the engine takes them."""
    return tuple(CollectionPrint(name, found.count, found.digest)
                 for name, found in sorted(engine.fingerprint().items()))


def primary_database(engine: Engine) -> object:
    """The database handle migrations get first (``db``, or ``conn``): what checks receive."""
    return next(iter(engine.migration_context().values()))
