"""Renderings of the backup commands' results: backup, list_backups, verify (and its restore
drill), prune,
delete_backup, restore, copy_db, recover, drop_db, list_query_sets and generate_query_set.

Restore and copy results are rendered from their fields only; the views below carry what a
result does not say itself (the store's URL of an empty listing, the engine of a dropped
database...). ``show`` and ``text`` are re-exported: imported from here, this module's
renderers are registered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monarch.backups.catalog import BackupInfo
from monarch.backups.copy import CopyResult
from monarch.backups.drill import DrillResult
from monarch.backups.health import HealthReport, format_age
from monarch.backups.legacy import LegacyBackup
from monarch.backups.preview import ADD, REMOVE, REPLACE, RestorePreview
from monarch.backups.prune import DeleteResult, PruneResult
from monarch.backups.records import DrillRecord, VerifyRecord
from monarch.backups.restore import RestoreResult
from monarch.backups.verify import VerifyResult
from monarch.backups.writer import BackupResult
from monarch.cli.output import table
from monarch.cli.render import brief, data, show, text
from monarch.engines import registry
from monarch.engines.base import ARCHIVE_FORMAT, CollectionRestored, Dropped
from monarch.progress import contents, counted, format_duration, format_size
from monarch.querysets.files import QuerySetInfo

__all__ = [
    "BackupList",
    "DropReport",
    "QuerySetCreated",
    "QuerySets",
    "Recovered",
    "show",
    "text",
]


@dataclass(frozen=True)
class BackupList:
    """What ``list_backups`` found: ``env`` is the environment asked for (None: all), and
    ``store_url`` where the store is (said when nothing was found)."""

    backups: Sequence[BackupInfo | LegacyBackup]
    env: str | None
    store_url: str


@dataclass(frozen=True)
class Recovered:
    """What ``recover`` did on ``env``: ``done`` says it, None when nothing was pending."""

    env: str
    done: str | None


@dataclass(frozen=True)
class DropReport:
    """What ``drop_db`` did to ``env``'s database (``engine`` names what it held)."""

    env: str
    engine: str
    dropped: Dropped


@dataclass(frozen=True)
class QuerySets:
    """The query sets ``list_query_sets`` found in ``folder``."""

    found: Sequence[QuerySetInfo]
    folder: Path


@dataclass(frozen=True)
class QuerySetCreated:
    """The template ``generate_query_set`` wrote for query set ``name``."""

    name: str
    path: Path


# backup ----------------------------------------------------------------------------------


@text.register
def _backup_text(result: BackupResult) -> list[str]:
    m = result.manifest
    lines = [f"Backed up {m.environment} (database {m.database} on {m.source_host or '-'}) "
             f"as {result.name}"]
    if m.archive.format == ARCHIVE_FORMAT:
        rate = result.data_bytes / result.seconds if result.seconds > 0 else 0.0
        lines.append(f"  {result.collections} collections, {result.documents:,} documents, "
                     f"{format_size(result.data_bytes)} of BSON -> {format_size(result.size)} "
                     f"archive ({m.archive.compression}) in {format_duration(result.seconds)} "
                     f"({format_size(rate)}/s)")
    else:  # another tool's dump: tables, and the dump's own size
        lines.append(f"  {result.collections} table{_s(result.collections)}, "
                     f"{format_size(m.archive.uncompressed_size)} of {m.archive.format} -> "
                     f"{format_size(result.size)} ({m.archive.compression}) in "
                     f"{format_duration(result.seconds)}")
    if m.query_set:
        lines.append(f"  through query set {m.query_set!r}")
    if m.encryption is not None:
        lines.append(f"  encrypted (age) to {len(m.encryption.recipients)} recipient(s): "
                     + ", ".join(m.encryption.recipients))
    lines.append(f"  in {result.store_url}")
    if result.retention is not None:
        lines.append(f"  locked until {result.retention.until:%Y-%m-%d %H:%M:%S} UTC "
                     f"({result.retention.mode} retention)")
    lines.append(f"Restore it with: monarch restore {result.name}:ENV")
    return lines


@brief.register
def _backup_brief(result: BackupResult) -> list[str]:
    return [result.name]  # what a script needs to restore it


@data.register
def _backup_data(result: BackupResult) -> dict[str, Any]:
    lock = result.retention
    return {"name": result.name, "store": result.store_url,
            "locked_until": lock.until.isoformat() if lock else None,
            "lock_mode": lock.mode if lock else None,
            "manifest": json.loads(result.manifest.to_json())}


# list_backups ----------------------------------------------------------------------------


@text.register
def _list_text(listing: BackupList) -> list[str]:
    backups = listing.backups
    if not backups:
        where = f" of {listing.env}" if listing.env else ""
        return [f"No backups{where} in {listing.store_url}."]
    # No environment, time or duration columns: the name says where and when (to the second,
    # UTC), and --json has the rest; the table stays under 100 columns for usual names.
    headers = ("NAME", "SIZE", *_count_headers(backups), "COMPRESSION", "VERIFIED", "DRILLED")
    year = datetime.now(UTC).year
    return [table(headers, [_legacy_row(b) if isinstance(b, LegacyBackup)
                            else _backup_row(b, year) for b in backups])]


def _checked_cells(b: BackupInfo, year: int) -> tuple[str, str]:
    """The day the backup was last verified and drilled, and how it went; ``never`` for what
    was never done. Day only, and no drill environment (``--json`` has both in full)."""
    record = b.checked
    drill = record.drill if record is not None else None
    return ("never" if record is None else _outcome(record.ok, record.verified_at, year),
            "never" if drill is None else _outcome(drill.ok, drill.drilled_at, year))


def _outcome(ok: bool, at: datetime, year: int) -> str:
    """``ok Dec 2`` (a day of the year ``year``), ``FAILED 2025-12-02`` (of another)."""
    at = at.astimezone(UTC)
    day = f"{at:%b} {at.day}" if at.year == year else f"{at:%Y-%m-%d}"
    return f"{'ok' if ok else 'FAILED'} {day}"


def _backup_row(b: BackupInfo, year: int) -> tuple[object, ...]:
    if b.encrypted:  # counts are sealed in the manifest
        return (b.name, format_size(b.size), "-", "-", b.compression + ", encrypted (age)",
                *_checked_cells(b, year))
    return (b.name, format_size(b.size), b.collections, f"{b.documents:,}",
            b.compression + (f" (query set {b.query_set})" if b.query_set else ""),
            *_checked_cells(b, year))


def _legacy_row(b: LegacyBackup) -> tuple[object, ...]:
    """A 0.0.x zip: no manifest, so nothing to verify against or drill (``-``, not never)."""
    return (b.name, format_size(b.size), "-", "-",
            f"legacy zip (monarch 0.0.x, database {b.database})", "-", "-")


def _count_headers(backups: Sequence[BackupInfo | LegacyBackup]) -> tuple[str, str]:
    """COLLECTIONS/DOCUMENTS for MongoDB backups, TABLES/ROWS for SQL ones, both when mixed."""
    legacy = next(r.name for r in registry.engines() if r.legacy_backups)
    names = {legacy if isinstance(b, LegacyBackup) else b.manifest.engine for b in backups}
    found = [registry.by_name(name) for name in names]
    used = {(row.noun, row.unit) if row is not None else ("table", "row") for row in found}
    # In the registry's order: COLLECTIONS/TABLES, not TABLES/COLLECTIONS.
    kinds = [k for k in dict.fromkeys((r.noun, r.unit) for r in registry.engines()) if k in used]
    return (
        "/".join(f"{noun.upper()}S" for noun, _ in kinds),
        "/".join(f"{unit.upper()}S" for _, unit in kinds),
    )


@data.register
def _list_data(listing: BackupList) -> list[dict[str, Any]]:
    return [_info_data(b) for b in listing.backups]


def _info_data(b: BackupInfo | LegacyBackup) -> dict[str, Any]:
    if isinstance(b, LegacyBackup):
        return {"name": b.name, "legacy": True, "database": b.database,
                "created": b.created.isoformat(), "size": b.size, "archive": b.key}
    sealed = b.encrypted  # database, counts and query set are sealed in the manifest
    return {
        "name": b.name, "legacy": False, "environment": b.environment,
        "database": None if sealed else b.database,
        "created": b.created.isoformat(), "finished": b.finished.isoformat(),
        "duration_seconds": round(b.duration, 3), "size": b.size,
        "collections": None if sealed else b.collections,
        "documents": None if sealed else b.documents,
        "compression": b.compression, "label": b.label,
        "query_set": None if sealed else b.query_set,
        "archive": b.manifest.archive.key, "sha256": b.manifest.archive.sha256,
        "encrypted": sealed,
        "recipients": list(b.manifest.encryption.recipients) if b.manifest.encryption else [],
        **_checked_data(b.checked),
    }


def _checked_data(record: VerifyRecord | None) -> dict[str, Any]:
    """``last_verify`` and ``last_drill`` of a listed backup (null: never done)."""
    drill = record.drill if record is not None else None
    return {
        "last_verify": None if record is None else {
            "ok": record.ok, "at": record.verified_at.isoformat(),
            "problems": list(record.problems)},
        "drilled": drill is not None,
        "last_drill": None if drill is None else _drill_record_data(drill),
    }


def _drill_record_data(drill: DrillRecord) -> dict[str, Any]:
    return {"ok": drill.ok, "at": drill.drilled_at.isoformat(), "into": drill.into,
            "seconds": drill.seconds, "problems": list(drill.problems),
            "checks": [{"name": c.name, "ok": c.ok, "error": c.error} for c in drill.checks]}


# verify, prune, delete_backup ------------------------------------------------------------


@text.register
def _verify_text(result: VerifyResult) -> list[str]:
    if not result.ok:
        return [f"FAILED {result.name}: {len(result.problems)} problem(s)",
                *(f"  - {problem}" for problem in result.problems)]
    what = ("are intact (a monarch 0.0.x zip has no manifest)" if result.legacy
            else "match the manifest")
    return [f"OK {result.name}: {counted(result.collections, result.unit)}, "
            f"{contents(result.documents, result.unit)}, {format_size(result.size)}; "
            f"{result.checked} {what}"]


@data.register
def _verify_data(result: VerifyResult) -> dict[str, Any]:
    return {"name": result.name, "ok": result.ok, "legacy": result.legacy,
            "problems": list(result.problems),
            "collections": result.collections, "documents": result.documents,
            "size": result.size, "seconds": round(result.seconds, 3)}


@text.register
def _drill_text(result: DrillResult) -> list[str]:
    took = format_duration(result.seconds)
    tail = [f"  the scratch database {result.scratch} on {result.into} was "
            + ("kept: remove it with the server's own tools when done" if result.kept
               else "removed")]
    if not result.ok:
        return [f"FAILED {result.name}: restore drill on {result.into}: "
                f"{len(result.problems)} problem(s) in {took}",
                *(f"  - {problem}" for problem in result.problems), *tail]
    lines = [f"OK {result.name}: restore drill on {result.into} passed in {took}",
             f"  restored {counted(len(result.collections), result.unit)}, "
             f"{contents(result.documents, result.unit)}",
             f"  held to: {'; '.join(result.compared)}"]
    if result.checks:
        lines.append(f"  checks: {len(result.checks)} passed ("
                     + ", ".join(c.name for c in result.checks) + ")")
    else:
        lines.append("  checks: none (write some in checks/*.py: see docs/backups.md)")
    return [*lines, *tail]


@data.register
def _drill_data(result: DrillResult) -> dict[str, Any]:
    return {"name": result.name, "ok": result.ok, "drill": True, "into": result.into,
            "scratch": result.scratch, "kept": result.kept,
            "problems": list(result.problems),
            "compared": list(result.compared),
            "collections": [{"name": c.name, "count": c.count, "digest": c.digest or None}
                            for c in result.collections],
            "checks": [{"name": c.name, "ok": c.ok, "error": c.error or None}
                       for c in result.checks],
            "documents": result.documents, "seconds": round(result.seconds, 3)}


@text.register
def _prune_text(result: PruneResult) -> list[str]:
    dry_run = result.dry_run
    verb = "would remove" if dry_run else "removed"
    lines = [f"keep    {kept.backup.name}  ({', '.join(kept.reasons)})" for kept in result.kept]
    lines += [f"{'remove' if dry_run else 'removed'} {info.name}" for info in result.removed]
    lines += [f"locked  {item.backup.name}  (cannot be deleted until "
              f"{item.until:%Y-%m-%d %H:%M:%S} UTC, {item.retention.mode} retention)"
              for item in result.locked]
    lines += [f"{verb} orphan archive {key}" for key in result.orphans]
    lines += [f"locked  orphan archive {key} (left until its retention ends)"
              for key in result.locked_orphans]
    tail = f", {result.leftovers} unfinished upload(s)" if result.leftovers else ""
    held = (f"; {len(result.locked)} locked backup(s) left until their retention ends"
            if result.locked else "")
    lines.append(f"{'Dry run: ' if dry_run else ''}kept {len(result.kept)}, {verb} "
                 f"{len(result.removed)} backup(s) and {len(result.orphans)} orphan(s){tail}"
                 f"{held}.")
    if result.legacy:
        lines.append(f"Left {len(result.legacy)} legacy backup(s) of monarch 0.0.x alone (prune "
                     "never deletes them); delete one with `monarch delete_backup NAME`.")
    return lines


@data.register
def _prune_data(result: PruneResult) -> dict[str, Any]:
    return {
        "dry_run": result.dry_run, "legacy_kept": list(result.legacy),
        "kept": [{"name": k.backup.name, "reasons": list(k.reasons)} for k in result.kept],
        "removed": [b.name for b in result.removed],
        "locked": [{"name": item.backup.name, "until": item.until.isoformat(),
                    "mode": item.retention.mode} for item in result.locked],
        "orphans": list(result.orphans), "locked_orphans": list(result.locked_orphans),
        "leftovers": result.leftovers,
    }


# check_backups -----------------------------------------------------------------------------


@text.register
def _health_text(report: HealthReport) -> list[str]:
    if not report.ok:
        return [f"FAIL {e.environment}: {e.reason()}" for e in report.failing]
    parts = []
    for e in report.environments:
        assert e.newest is not None  # a healthy environment has a newest backup
        verified = ""
        if e.last_verify is not None and e.last_verify.name == e.newest.name:
            drill = e.last_verify.drill
            verified = ", verified and drilled" if drill is not None and drill.ok else ", verified"
        parts.append(f"{e.environment} ({e.newest.name}, {format_age(e.age or 0)} old, "
                     f"{format_size(e.newest.size)}{verified})")
    return [f"OK {len(parts)} environment{_s(len(parts))}: " + "; ".join(parts)]


@data.register
def _health_data(report: HealthReport) -> dict[str, Any]:
    return {
        "ok": report.ok, "store": report.store_url, "checked_at": report.checked_at.isoformat(),
        "max_age_seconds": report.max_age, "min_size": report.min_size,
        "min_ratio": report.min_ratio,
        "environments": [{
            "environment": e.environment, "ok": e.ok, "problems": list(e.problems),
            "newest": e.newest.name if e.newest else None,
            "finished": e.newest.finished.isoformat() if e.newest else None,
            "age_seconds": round(e.age, 1) if e.age is not None else None,
            "size": e.newest.size if e.newest else None,
            "median_size": e.median_size,
            "last_verify": None if e.last_verify is None else {
                "name": e.last_verify.name, "ok": e.last_verify.ok,
                "verified_at": e.last_verify.verified_at.isoformat(),
                "problems": list(e.last_verify.problems),
                "drill": None if e.last_verify.drill is None
                else _drill_record_data(e.last_verify.drill)},
        } for e in report.environments],
    }


@text.register
def _delete_text(result: DeleteResult) -> list[str]:
    what = "backup" if result.was_complete else "leftovers of backup"
    return [f"Deleted {what} {result.name}: {', '.join(result.keys)}"]


# restore, copy_db, recover ---------------------------------------------------------------


@text.register
def _restore_text(result: RestoreResult) -> list[str]:
    if result.format != ARCHIVE_FORMAT:
        lines = _tables_lines(result.tables, result.format, result.stream_bytes, result.seconds,
                              result.dropped, recovered=result.recovered)
    else:
        lines = _collections_lines(result.collections, result.seconds, result.dropped,
                                   result.skipped, result.recovered)
    if result.selection is not None:
        lines.append(f"selected: {result.selection}; everything else left as it was")
    into = result.environment
    if result.other_database:
        into = f"database {result.database} of {result.environment}"
    return [f"Restored {result.backup} into {into}", *_indented(lines)]


@data.register
def _restore_data(result: RestoreResult) -> dict[str, Any]:
    return {
        "backup": result.backup, "environment": result.environment,
        "database": result.database, "source": result.source,
        "source_database": result.source_database, "format": result.format,
        "collections": [{"name": c.name, "type": c.type, "documents": c.documents,
                         "bytes": c.bytes, "indexes": list(c.indexes)}
                        for c in result.collections],
        "tables": list(result.tables), "dropped": list(result.dropped),
        "skipped": list(result.skipped), "recovered": result.recovered,
        "selection": result.selection, "other_database": result.other_database,
        "seconds": round(result.seconds, 3),
    }


@text.register
def _preview_text(result: RestorePreview) -> list[str]:
    into = result.environment
    if result.other_database:
        into = f"database {result.database} of {result.environment}"
    lines = [f"Restoring {result.backup} into {into} would:"]
    rows = [(c.action, c.name, "-" if c.before is None else f"{c.before:,}",
             "-" if c.after is None else f"{c.after:,}",
             f"from {c.source}" if c.source != c.name else "")
            for c in result.changes]
    unit = "documents" if result.noun == "collection" else "rows"
    if rows:
        lines += _indented(table(["action", result.noun, f"{unit} now", "after", ""],
                                 rows).splitlines())
    counts = {a: sum(c.action == a for c in result.changes) for a in (REPLACE, ADD, REMOVE)}
    summary = ", ".join(f"{a} {n}" for a, n in counts.items())
    extra = []
    if result.selection is not None:
        extra.append(f"selected: {result.selection}")
    if result.untouched:
        extra.append("left as they are: " + ", ".join(result.untouched))
    if result.counted_from == "dump":
        extra.append("the backup's counts were read from the dump (it has no manifest)")
    return [*lines, *_indented([f"{summary} ({result.noun}s)", *extra]),
            "Dry run: nothing was changed."]


@data.register
def _preview_data(result: RestorePreview) -> dict[str, Any]:
    return {
        "dry_run": True, "backup": result.backup, "environment": result.environment,
        "database": result.database, "other_database": result.other_database,
        "noun": result.noun, "selection": result.selection,
        "counted_from": result.counted_from,
        "changes": [{"action": c.action, "name": c.name, "source": c.source,
                     "before": c.before, "after": c.after} for c in result.changes],
        "untouched": list(result.untouched),
    }





@text.register
def _copy_text(result: CopyResult) -> list[str]:
    if result.format != ARCHIVE_FORMAT:
        lines = _tables_lines(result.tables, result.format, None, result.seconds,
                              result.dropped, recovered=result.recovered)
    else:
        lines = _collections_lines(result.collections, result.seconds, result.dropped, (),
                                   result.recovered)
    if result.backup is not None:
        lines.append(f"kept backup: {result.backup.name}")
    if result.selection is not None:
        lines.append(f"selected: {result.selection}; everything else left as it was")
    return [f"Copied {result.source} into {result.target}", *_indented(lines)]


@brief.register(RestoreResult)
@brief.register(CopyResult)
def _replaced_brief(result: object) -> list[str]:
    return []  # success is the exit code


def _collections_lines(collections: Sequence[CollectionRestored], seconds: float,
                       dropped: Sequence[str], skipped: Sequence[str],
                       recovered: str | None) -> list[str]:
    """A restore or copy of a MongoDB database: totals, then what was removed or skipped."""
    documents = sum(c.documents for c in collections)
    size = sum(c.bytes for c in collections)
    lines = [f"first: {recovered}"] if recovered else []
    lines.append(f"{len(collections)} collection{_s(len(collections))}, {documents:,} "
                 f"documents, {format_size(size)} in {format_duration(seconds)}")
    if dropped:
        lines.append("removed (not in the backup): " + ", ".join(dropped))
    if skipped:
        lines.append("not restored (not data): " + ", ".join(skipped))
    return lines


def _tables_lines(tables: Sequence[str], format: str, size: int | None, seconds: float,
                  dropped: Sequence[str], *, recovered: str | None) -> list[str]:
    """A restore or copy of a PostgreSQL or SQLite database (``size``: of the dump stream)."""
    lines = [f"first: {recovered}"] if recovered else []
    through = f" from {format_size(size)} of {format}" if size else ""
    lines.append(f"{len(tables)} table{_s(len(tables))}{through} in {format_duration(seconds)}")
    if dropped:
        lines.append("removed (not in the source): " + ", ".join(dropped))
    return lines


@text.register
def _recovered_text(result: Recovered) -> list[str]:
    return [result.done or f"No interrupted restore or copy into {result.env}; nothing to do."]


# drop_db, query sets ---------------------------------------------------------------------


@text.register
def _drop_text(report: DropReport) -> list[str]:
    result, env = report.dropped, report.env
    lines = [f"First: {result.recovered}"] if result.recovered else []
    if not result.existed:
        return [*lines, f"{env}'s database {result.database} does not exist; nothing to drop."]
    count = len(result.removed)
    row = registry.by_name(report.engine)
    noun = (row.noun if row is not None else "table") + _s(count)
    held = f": {', '.join(result.removed)}" if count else ""
    return [*lines, f"Dropped {env}'s database {result.database}: {result.how}.",
            f"  it held {count} {noun}{held}"]


@text.register
def _query_sets_text(listing: QuerySets) -> list[str]:
    if not listing.found:
        return [f"No query sets in {listing.folder}.",
                "Create one with: monarch generate_query_set NAME"]
    kinds = {"module": "file", "class": "class (monarch.QuerySet)"}
    rows = [(q.name, kinds.get(q.kind, q.kind), q.path.name) for q in listing.found]
    return [table(("NAME", "KIND", "FILE"), rows),
            "Use one with: --query-set NAME (backup, copy_db)"]


@data.register
def _query_sets_data(listing: QuerySets) -> list[dict[str, Any]]:
    return [{"name": q.name, "kind": q.kind, "path": str(q.path)} for q in listing.found]


@text.register
def _query_set_created_text(created: QuerySetCreated) -> list[str]:
    return [f"created {created.path}",
            f"Next: edit it, then `monarch backup ENV --query-set {created.name}` or "
            f"`monarch copy_db FROM:TO --query-set {created.name}`"]


def _indented(lines: list[str]) -> list[str]:
    return [f"  {line}" for line in lines]


def _s(count: int) -> str:
    """The plural ending for ``count`` things."""
    return "" if count == 1 else "s"
