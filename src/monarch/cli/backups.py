"""Backup commands: backup, list_backups, verify, prune, delete_backup, generate_query_set,
restore and copy_db. Each parses its arguments, calls one function of
:mod:`monarch.api.backups` and prints the result; progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from monarch.cli.output import confirm_name, echo_json, table, yes_option
from monarch.cli.session import Session
from monarch.engines import registry
from monarch.errors import UsageError

if TYPE_CHECKING:
    from monarch.backups.catalog import BackupInfo
    from monarch.backups.legacy import LegacyBackup
    from monarch.progress import Progress

F = TypeVar("F", bound=Callable[..., Any])

_quiet = click.option(
    "-q", "--quiet", is_flag=True, help="No progress; print only the essential result."
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_confirm_name = click.option(
    "--confirm", metavar="NAME", help="Type the protected target's name (for scripts and CI)."
)


def _confirm(command: F) -> F:
    """``--confirm NAME`` and ``-y/--yes``: the options of every command that replaces data."""
    return _confirm_name(yes_option(command))


def _progress(quiet: bool) -> Progress:
    from monarch.cli.progress import progress_for

    return progress_for(sys.stderr, quiet=quiet)


def split_spec(spec: str | None, shape: str, example: str, command: str) -> tuple[str, str]:
    """Split ``A:B`` (at the last colon, so a path may hold one); UsageError if malformed."""
    left, colon, right = (spec or "").rpartition(":")
    if not spec or not colon or not left or not right:
        given = f"got {spec!r}" if spec else "it is missing"
        raise UsageError(
            f"{command} takes {shape}, e.g. {example}; {given}",
            hint=f"monarch {command} {example}",
        )
    return left, right


@click.command()
@click.argument("env", required=False)
@click.option("--name", "label", metavar="LABEL", help="Label that ends the backup's name.")
@click.option("--query-set", metavar="NAME", help="Dump through query set NAME (list_query_sets).")
@click.option(
    "--compression", type=click.Choice(["zstd", "gzip", "none"]),
    help="Archive compression (default: the store's `compression`, else gzip).",
)
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Collections read at once.")
@_quiet
@_as_json
@click.pass_obj
def backup(
    session: Session, *, env: str | None, label: str | None, query_set: str | None,
    compression: str | None, parallel: int, quiet: bool, as_json: bool,
) -> None:
    """Back up ENV's database into the backup store."""
    from monarch.api.backups import backup as run_backup
    from monarch.backups.manifest import ARCHIVE_FORMAT
    from monarch.progress import format_duration, format_size

    if not env:
        raise UsageError("backup needs an environment", hint="monarch backup development")
    config = session.config
    result = run_backup(config, env, label=label, query_set=query_set, compression=compression,
                        progress=_progress(quiet or as_json), parallel=parallel)
    m = result.manifest
    if as_json:
        echo_json({"name": result.name, "store": result.store_url,
                   "manifest": json.loads(m.to_json())})
        return
    if quiet:
        click.echo(result.name)
        return
    environment = config.environment(env)
    rate = result.data_bytes / result.seconds if result.seconds > 0 else 0.0
    click.echo(f"Backed up {env} (database {m.database} on {environment.host or '-'}) "
               f"as {result.name}")
    if m.archive.format == ARCHIVE_FORMAT:
        click.echo(f"  {result.collections} collections, {result.documents:,} documents, "
                   f"{format_size(result.data_bytes)} of BSON -> {format_size(result.size)} "
                   f"archive ({m.archive.compression}) in {format_duration(result.seconds)} "
                   f"({format_size(rate)}/s)")
    else:  # another tool's dump: tables, and the dump's own size
        click.echo(f"  {result.collections} table{'s' if result.collections != 1 else ''}, "
                   f"{format_size(m.archive.uncompressed_size)} of {m.archive.format} -> "
                   f"{format_size(result.size)} ({m.archive.compression}) in "
                   f"{format_duration(result.seconds)}")
    if m.query_set:
        click.echo(f"  through query set {m.query_set!r}")
    click.echo(f"  in {result.store_url}")
    click.echo(f"Restore it with: monarch restore {result.name}:ENV")


@click.command()
@click.argument("env", required=False)
@_as_json
@click.pass_obj
def list_backups(session: Session, env: str | None, as_json: bool) -> None:
    """List the complete backups in the store (ENV's only, if given), oldest first.

    Backups made by monarch 0.0.x (NAME__YYYY_MM_DD.dmp.zip) are listed too, marked legacy.
    """
    from monarch.api.backups import list_backups as run_list
    from monarch.backups.legacy import LegacyBackup
    from monarch.progress import format_duration, format_size

    backups = run_list(session.config, env)
    if as_json:
        echo_json([_info_json(b) for b in backups])
        return
    if not backups:
        where = f" of {env}" if env else ""
        click.echo(f"No backups{where} in {session.config.backups.url}.")
        return
    rows = [
        (b.name, "-", b.created.strftime("%Y-%m-%d %H:%M:%S UTC" if b.time_known
                                         else "%Y-%m-%d"), "-", format_size(b.size),
         "-", "-", f"legacy zip (monarch 0.0.x, database {b.database})")
        if isinstance(b, LegacyBackup) else
        (b.name, b.environment, b.created.strftime("%Y-%m-%d %H:%M:%S UTC"),
         format_duration(b.duration), format_size(b.size), b.collections, f"{b.documents:,}",
         b.compression + (f" (query set {b.query_set})" if b.query_set else ""))
        for b in backups
    ]
    headers = ("NAME", "ENVIRONMENT", "CREATED", "DURATION", "SIZE", *_count_headers(backups),
               "COMPRESSION")
    click.echo(table(headers, rows))


def _count_headers(backups: list[BackupInfo | LegacyBackup]) -> tuple[str, str]:
    """COLLECTIONS/DOCUMENTS for MongoDB backups, TABLES/ROWS for SQL ones, both when mixed."""
    from monarch.backups.legacy import LegacyBackup

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


def _info_json(b: BackupInfo | LegacyBackup) -> dict[str, Any]:
    from monarch.backups.legacy import LegacyBackup

    if isinstance(b, LegacyBackup):
        return {"name": b.name, "legacy": True, "database": b.database,
                "created": b.created.isoformat(), "size": b.size, "archive": b.key}
    return {
        "name": b.name, "legacy": False, "environment": b.environment, "database": b.database,
        "created": b.created.isoformat(), "finished": b.finished.isoformat(),
        "duration_seconds": round(b.duration, 3), "size": b.size,
        "collections": b.collections, "documents": b.documents,
        "compression": b.compression, "label": b.label, "query_set": b.query_set,
        "archive": b.manifest.archive.key, "sha256": b.manifest.archive.sha256,
    }


@click.command()
@click.argument("name", metavar="BACKUP", required=False)
@_quiet
@_as_json
@click.pass_obj
def verify(session: Session, name: str | None, quiet: bool, as_json: bool) -> int:
    """Read BACKUP's whole archive and check it against its manifest (exit 1 if unsound).

    A monarch 0.0.x backup (or .dmp.zip file) is checked by itself: the zip, every member's
    CRC-32, the metadata and every BSON document.
    """
    from monarch.api.backups import verify as run_verify
    from monarch.progress import contents, counted, format_size

    if not name:
        raise UsageError("verify needs a backup name",
                         hint="monarch list_backups shows them; then monarch verify NAME")
    result = run_verify(session.config, name, progress=_progress(quiet or as_json))
    if as_json:
        echo_json({"name": result.name, "ok": result.ok, "legacy": result.legacy,
                   "problems": list(result.problems),
                   "collections": result.collections, "documents": result.documents,
                   "size": result.size, "seconds": round(result.seconds, 3)})
    elif result.ok:
        what = ("are intact (a monarch 0.0.x zip has no manifest)" if result.legacy
                else "match the manifest")
        click.echo(f"OK {result.name}: {counted(result.collections, result.unit)}, "
                   f"{contents(result.documents, result.unit)}, {format_size(result.size)}; "
                   f"{result.checked} {what}")
    else:
        click.echo(f"FAILED {result.name}: {len(result.problems)} problem(s)")
        for problem in result.problems:
            click.echo(f"  - {problem}")
    return 0 if result.ok else 1


@click.command()
@click.option("--keep-last", type=int, metavar="N", help="Keep the N newest backups.")
@click.option("--keep-daily", type=int, metavar="N",
              help="Keep the newest backup of each of the last N days that have one.")
@click.option("--keep-weekly", type=int, metavar="N",
              help="Keep the newest backup of each of the last N weeks that have one.")
@click.option("--env", metavar="ENV", help="Prune only ENV's backups (default: each env).")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@_as_json
@click.pass_obj
def prune(
    session: Session, *, keep_last: int | None, keep_daily: int | None, keep_weekly: int | None,
    env: str | None, dry_run: bool, as_json: bool,
) -> None:
    """Delete backups no --keep-* rule keeps, and leftovers of interrupted runs."""
    from monarch.api.backups import prune as run_prune

    result = run_prune(session.config, keep_last=keep_last, keep_daily=keep_daily,
                       keep_weekly=keep_weekly, env=env, dry_run=dry_run)
    if as_json:
        echo_json({
            "dry_run": result.dry_run, "legacy_kept": list(result.legacy),
            "kept": [{"name": k.backup.name, "reasons": list(k.reasons)} for k in result.kept],
            "removed": [b.name for b in result.removed],
            "orphans": list(result.orphans), "leftovers": result.leftovers,
        })
        return
    verb = "would remove" if dry_run else "removed"
    for kept in result.kept:
        click.echo(f"keep    {kept.backup.name}  ({', '.join(kept.reasons)})")
    for info in result.removed:
        click.echo(f"{'remove' if dry_run else 'removed'} {info.name}")
    for key in result.orphans:
        click.echo(f"{verb} orphan archive {key}")
    tail = f", {result.leftovers} unfinished upload(s)" if result.leftovers else ""
    click.echo(f"{'Dry run: ' if dry_run else ''}kept {len(result.kept)}, {verb} "
               f"{len(result.removed)} backup(s) and {len(result.orphans)} orphan(s){tail}.")
    if result.legacy:
        click.echo(f"Left {len(result.legacy)} legacy backup(s) of monarch 0.0.x alone (prune "
                   "never deletes them); delete one with `monarch delete_backup NAME`.")


@click.command()
@click.argument("name", metavar="BACKUP", required=False)
@click.pass_obj
def delete_backup(session: Session, name: str | None) -> None:
    """Delete BACKUP: its manifest first (it is then gone), then its archive.

    A monarch 0.0.x backup (NAME or NAME.dmp.zip) is its one zip.
    """
    from monarch.api.backups import delete_backup as run_delete

    if not name:
        raise UsageError("delete_backup needs a backup name",
                         hint="monarch list_backups shows them; then monarch delete_backup NAME")
    result = run_delete(session.config, name)
    what = "backup" if result.was_complete else "leftovers of backup"
    click.echo(f"Deleted {what} {result.name}: {', '.join(result.keys)}")


@click.command()
@click.argument("name", required=False)
@click.option("--force", is_flag=True, help="Overwrite an existing query set file.")
@click.pass_obj
def generate_query_set(session: Session, name: str | None, force: bool) -> None:
    """Write querysets/NAME.py, a template that narrows and transforms what is dumped."""
    from monarch.api.backups import generate_query_set as run_generate

    if not name:
        raise UsageError("generate_query_set needs a name", hint="monarch generate_query_set "
                         "anonymized")
    path = run_generate(session.config, name, force=force)
    click.echo(f"created {path}")
    click.echo(f"Next: edit it, then `monarch backup ENV --query-set {name}` or "
               f"`monarch copy_db FROM:TO --query-set {name}`")


@click.command()
@click.argument("spec", metavar="BACKUP:ENV", required=False)
@click.option("--from-db", metavar="NAME", help="The database to take from a multi-db dump.")
@click.option("--max-size", metavar="SIZE",
              help="Most a mongodump archive or folder may decompress to, e.g. 50G "
                   "(default: [backups] max_restore_size, else 100x its size on disk).")
@_confirm
@_quiet
@click.pass_obj
def restore(
    session: Session, *, spec: str | None, from_db: str | None, max_size: str | None,
    confirm: str | None, quiet: bool,
) -> None:
    """Restore BACKUP (a backup name, or a mongodump archive or folder) into ENV.

    BACKUP may also be a backup of monarch 0.0.x: NAME__YYYY_MM_DD[.dmp.zip] in the store, or
    the path of such a zip.
    """
    from monarch.api.backups import restore as run_restore

    backup_name, env = split_spec(spec, "BACKUP:ENV", "production-20260101T120000Z:development",
                                  "restore")
    environment = session.environment(env)
    if environment.protected:
        confirm = confirm_name(environment.name, f"restore {backup_name} into it", confirm)
    result = run_restore(session.config, backup_name, env, from_db=from_db, confirm=confirm,
                         progress=_progress(quiet), max_size=max_size)
    _echo_outcome(f"Restored {backup_name} into {env}", result, quiet)


@click.command()
@click.argument("spec", metavar="FROM:TO", required=False)
@click.option("--query-set", metavar="NAME", help="Copy through query set NAME (list_query_sets).")
@click.option("--keep-backup", is_flag=True, help="Also store the copied data as a backup.")
@_confirm
@_quiet
@click.pass_obj
def copy_db(
    session: Session, *, spec: str | None, query_set: str | None, keep_backup: bool,
    confirm: str | None, quiet: bool,
) -> None:
    """Copy FROM's database into TO (TO then holds exactly FROM's data)."""
    from monarch.api.backups import copy_db as run_copy

    source, target = split_spec(spec, "FROM:TO", "production:development", "copy_db")
    if source == target:
        raise UsageError(f"copy_db {spec}: source and target are the same environment",
                         hint="name two environments, e.g. monarch copy_db production:development")
    session.environment(source)
    environment = session.environment(target)
    if environment.protected:
        confirm = confirm_name(environment.name, f"copy {source} over it", confirm)
    result = run_copy(session.config, source, target, query_set=query_set,
                      keep_backup=keep_backup, confirm=confirm, progress=_progress(quiet))
    _echo_outcome(f"Copied {source} into {target}", result, quiet)


def _echo_outcome(headline: str, result: object, quiet: bool) -> None:
    """Print a restore-side result: its own ``summary()`` lines when it has them."""
    if quiet:
        return
    click.echo(headline)
    summary = getattr(result, "summary", None)
    lines = summary() if callable(summary) else None
    for line in lines or ():
        click.echo(f"  {line}")


@click.command()
@click.argument("env")
@_confirm
@click.pass_obj
def recover(session: Session, *, env: str, confirm: str | None) -> None:
    """Finish or clean up a restore or copy_db into ENV that was interrupted.

    Every restore and copy_db does this first by itself; this does it without restoring again.
    """
    from monarch.api.backups import recover as run_recover

    environment = session.environment(env)
    if environment.protected:
        confirm = confirm_name(environment.name, "recover an interrupted restore", confirm)
    done = run_recover(session.config, env, confirm=confirm)
    click.echo(done or f"No interrupted restore or copy into {env}; nothing to do.")


COMMANDS = [
    backup, list_backups, verify, prune, delete_backup, generate_query_set, restore, copy_db,
    recover,
]
