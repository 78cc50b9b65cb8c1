"""Backup commands: backup, list_backups, verify, prune, delete_backup, generate_query_set,
restore and copy_db. Each parses its arguments, calls one function of
:mod:`monarch.api.backups` and prints the result; progress goes to stderr, results to stdout.

Commands call the library through :mod:`monarch`'s lazily imported names and import their
renderers (:mod:`monarch.cli.render.backups`, which import the library's result types) when
they run: the only imports inside functions, so that building the command line loads
neither (tests/core/test_startup.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

import monarch
from monarch.cli.output import confirm_name, lock_options, notices, yes_option
from monarch.cli.progress import progress_for
from monarch.cli.session import Session
from monarch.errors import UsageError

if TYPE_CHECKING:
    from monarch.engines.selection import Selection
    from monarch.progress import Progress

F = TypeVar("F", bound=Callable[..., Any])

_quiet = click.option(
    "-q", "--quiet", is_flag=True, help="No progress; print only the essential result."
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_metrics_file = click.option(
    "--metrics-file", metavar="PATH",
    help="Write Prometheus textfile metrics of this run to PATH (for node_exporter).",
)
_notify = click.option(
    "--notify", metavar="URL",
    help="POST a JSON event to this webhook on failure (default: [backups] notify_url).",
)
_identity = click.option(
    "--identity", metavar="FILE", type=click.Path(dir_okay=False),
    help="The age identity file of an encrypted backup (default: $MONARCH_AGE_IDENTITY, "
         "else [backups] identity).")
_confirm_name = click.option(
    "--confirm", metavar="NAME", help="Type the protected target's name (for scripts and CI)."
)


def _confirm(command: F) -> F:
    """``--confirm NAME`` and ``-y/--yes``: the options of every command that replaces data."""
    return _confirm_name(yes_option(command))


def _progress(quiet: bool) -> Progress:
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
@_metrics_file
@_notify
@_quiet
@_as_json
@click.pass_obj
def backup(
    session: Session, *, env: str | None, label: str | None, query_set: str | None,
    compression: str | None, parallel: int, metrics_file: str | None, notify: str | None,
    quiet: bool, as_json: bool,
) -> None:
    """Back up ENV's database into the backup store."""
    from monarch.cli.render.backups import show  # noqa: PLC0415

    if not env:
        raise UsageError("backup needs an environment", hint="monarch backup development")
    result = monarch.backup(session.config, env, label=label, query_set=query_set,
                            compression=compression, progress=_progress(quiet or as_json),
                            parallel=parallel, metrics_file=metrics_file, notify=notify)
    show(result, as_json=as_json, quiet=quiet)


@click.command()
@click.argument("env", required=False)
@_as_json
@click.pass_obj
def list_backups(session: Session, env: str | None, as_json: bool) -> None:
    """List the complete backups in the store (ENV's only, if given), oldest first.

    Backups made by monarch 0.0.x (NAME__YYYY_MM_DD.dmp.zip) are listed too, marked legacy.
    """
    from monarch.cli.render.backups import BackupList, show  # noqa: PLC0415

    backups = monarch.list_backups(session.config, env)
    show(BackupList(backups, env, session.config.backups.url), as_json=as_json)


@click.command()
@click.argument("name", metavar="BACKUP", required=False)
@click.option("--restore", "restore_drill", is_flag=True,
              help="Drill: restore BACKUP into a scratch database, check it against the "
                   "manifest and checks/*.py, then remove it.")
@click.option("--into", metavar="ENV",
              help="With --restore: the scratch database goes on ENV's server (default: the "
                   "backup's environment's drill_into).")
@click.option("--keep", is_flag=True,
              help="With --restore: leave the scratch database for inspection.")
@_identity
@_metrics_file
@_notify
@_quiet
@_as_json
@click.pass_obj
def verify(session: Session, name: str | None, *, restore_drill: bool, into: str | None,
           keep: bool, identity: str | None, metrics_file: str | None, notify: str | None,
           quiet: bool, as_json: bool) -> int:
    """Read BACKUP's whole archive and check it against its manifest (exit 1 if unsound).

    With --restore, a restore drill: BACKUP is restored into a new scratch database, held to
    its manifest, to its last drill and to the project's checks (checks/*.py), and the scratch
    is removed whatever happens. A monarch 0.0.x backup (or .dmp.zip file) is checked by
    itself: the zip, every member's CRC-32, the metadata and every BSON document.
    """
    from monarch.cli.render.backups import show  # noqa: PLC0415

    if not name:
        raise UsageError("verify needs a backup name",
                         hint="monarch list_backups shows them; then monarch verify NAME")
    if (into is not None or keep) and not restore_drill:
        option = "--into" if into is not None else "--keep"
        raise UsageError(f"{option} is an option of a restore drill; it needs --restore",
                         hint=f"monarch verify {name} --restore {option}"
                              + (f" {into}" if into is not None else ""))
    progress = _progress(quiet or as_json)
    result = (monarch.drill(session.config, name, into=into, keep=keep, progress=progress,
                            identity=identity, metrics_file=metrics_file, notify=notify)
              if restore_drill else
              monarch.verify(session.config, name, progress=progress, metrics_file=metrics_file,
                             notify=notify, identity=identity))
    show(result, as_json=as_json)
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
    from monarch.cli.render.backups import show  # noqa: PLC0415

    result = monarch.prune(session.config, keep_last=keep_last, keep_daily=keep_daily,
                           keep_weekly=keep_weekly, env=env, dry_run=dry_run)
    show(result, as_json=as_json)


@click.command()
@click.argument("name", metavar="BACKUP", required=False)
@click.pass_obj
def delete_backup(session: Session, name: str | None) -> None:
    """Delete BACKUP: its manifest first (it is then gone), then its archive.

    A monarch 0.0.x backup (NAME or NAME.dmp.zip) is its one zip.
    """
    from monarch.cli.render.backups import show  # noqa: PLC0415

    if not name:
        raise UsageError("delete_backup needs a backup name",
                         hint="monarch list_backups shows them; then monarch delete_backup NAME")
    show(monarch.delete_backup(session.config, name))


@click.command()
@click.argument("name", required=False)
@click.option("--force", is_flag=True, help="Overwrite an existing query set file.")
@click.pass_obj
def generate_query_set(session: Session, name: str | None, force: bool) -> None:
    """Write querysets/NAME.py, a template that narrows and transforms what is dumped."""
    from monarch.cli.render.backups import QuerySetCreated, show  # noqa: PLC0415

    if not name:
        raise UsageError("generate_query_set needs a name", hint="monarch generate_query_set "
                         "anonymized")
    show(QuerySetCreated(name, monarch.generate_query_set(session.config, name, force=force)))


def _selection_options(command: F) -> F:
    """The options that choose what a restore or copy_db takes, and under which names."""
    options = [
        click.option("--collection", "--table", "include", multiple=True, metavar="NAME",
                     help="Only this collection (table); shell globs allowed; repeatable."),
        click.option("--exclude-collection", "--exclude-table", "exclude", multiple=True,
                     metavar="NAME", help="Leave this collection (table) out; globs; repeatable."),
        click.option("--schema", "schemas", multiple=True, metavar="NAME",
                     help="PostgreSQL: only the tables of this schema; repeatable."),
        click.option("--rename", "renames", multiple=True, metavar="OLD=NEW",
                     help="Restore OLD under the name NEW (e.g. users=users_restored)."),
        click.option("--ns-from", "--nsFrom", "ns_from", multiple=True, metavar="PATTERN",
                     help="mongorestore-style rename source, e.g. 'shop.$c$'; pairs with --ns-to."),
        click.option("--ns-to", "--nsTo", "ns_to", multiple=True, metavar="PATTERN",
                     help="mongorestore-style rename target, e.g. 'shop.old_$c$'."),
        click.option("--replace-existing", is_flag=True,
                     help="Let a renamed collection (table) replace one of the same name."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _selection(options: dict[str, Any]) -> Selection | None:
    """The Selection the options ask for (None: the whole database, as before)."""
    chosen = monarch.Selection.from_options(
        include=options.pop("include"), exclude=options.pop("exclude"),
        schemas=options.pop("schemas"), renames=options.pop("renames"),
        ns_from=options.pop("ns_from"), ns_to=options.pop("ns_to"),
        replace_existing=options.pop("replace_existing"),
    )
    if chosen.whole and chosen.replace_existing:
        raise UsageError("--replace-existing applies to renamed collections or tables; "
                         "nothing is renamed", hint="add --rename OLD=NEW or --ns-from/--ns-to")
    return chosen if chosen.partial else None


@click.command()
@click.argument("spec", metavar="BACKUP:ENV", required=False)
@click.option("--from-db", metavar="NAME", help="The database to take from a multi-db dump.")
@click.option("--max-size", metavar="SIZE",
              help="Most a mongodump archive or folder may decompress to, e.g. 50G "
                   "(default: [backups] max_restore_size, else 100x its size on disk).")
@_selection_options
@click.option("--database", metavar="NAME",
              help="Restore into this database of ENV's server (ENV's credentials and rules).")
@click.option("--dry-run", is_flag=True,
              help="Say what would be replaced, added and removed (counts); change nothing.")
@_identity
@_confirm
@_quiet
@_as_json
@lock_options
@click.pass_obj
def restore(
    session: Session, /, *, spec: str | None, from_db: str | None, max_size: str | None,
    database: str | None, dry_run: bool, identity: str | None, confirm: str | None,
    quiet: bool, as_json: bool, lock_timeout: float, lock_lease: float, **options: Any,
) -> None:
    """Restore BACKUP (a backup name, or a mongodump archive or folder) into ENV.

    BACKUP may also be a backup of monarch 0.0.x: NAME__YYYY_MM_DD[.dmp.zip] in the store, or
    the path of such a zip. With --collection/--table/--schema/--rename only those are
    restored, each replaced atomically, and the rest of ENV is left as it is.
    """
    from monarch.cli.render.backups import show  # noqa: PLC0415

    backup_name, env = split_spec(spec, "BACKUP:ENV", "production-20260101T120000Z:development",
                                  "restore")
    selection = _selection(options)
    environment = session.environment(env)
    if dry_run:
        found = monarch.restore_preview(session.config, backup_name, env, from_db=from_db,
                                        max_size=max_size, selection=selection,
                                        database=database, identity=identity)
        show(found, as_json=as_json)
        return
    if environment.protected:
        confirm = confirm_name(environment.name, f"restore {backup_name} into it", confirm)
    result = monarch.restore(session.config, backup_name, env, from_db=from_db, confirm=confirm,
                             progress=_progress(quiet or as_json), max_size=max_size,
                             selection=selection, database=database, identity=identity,
                             lock_timeout=lock_timeout, lock_lease=lock_lease, reporter=notices())
    show(result, quiet=quiet, as_json=as_json)


@click.command()
@click.argument("spec", metavar="FROM:TO", required=False)
@click.option("--query-set", metavar="NAME", help="Copy through query set NAME (list_query_sets).")
@click.option("--keep-backup", is_flag=True, help="Also store the copied data as a backup.")
@_selection_options
@_confirm
@_quiet
@lock_options
@click.pass_obj
def copy_db(
    session: Session, /, *, spec: str | None, query_set: str | None, keep_backup: bool,
    confirm: str | None, quiet: bool, lock_timeout: float, lock_lease: float, **options: Any,
) -> None:
    """Copy FROM's database into TO (TO then holds exactly FROM's data).

    With --collection/--table/--schema/--rename only those are copied, each replaced
    atomically, and the rest of TO is left as it is.
    """
    from monarch.cli.render.backups import show  # noqa: PLC0415

    source, target = split_spec(spec, "FROM:TO", "production:development", "copy_db")
    selection = _selection(options)
    if source == target:
        raise UsageError(f"copy_db {spec}: source and target are the same environment",
                         hint="name two environments, e.g. monarch copy_db production:development")
    session.environment(source)
    environment = session.environment(target)
    if environment.protected:
        confirm = confirm_name(environment.name, f"copy {source} over it", confirm)
    result = monarch.copy_db(session.config, source, target, query_set=query_set,
                             keep_backup=keep_backup, confirm=confirm, progress=_progress(quiet),
                             selection=selection, lock_timeout=lock_timeout,
                             lock_lease=lock_lease, reporter=notices())
    show(result, quiet=quiet)


@click.command()
@click.argument("env")
@_confirm
@lock_options
@click.pass_obj
def recover(
    session: Session, *, env: str, confirm: str | None, lock_timeout: float, lock_lease: float
) -> None:
    """Finish or clean up a restore or copy_db into ENV that was interrupted.

    Every restore and copy_db does this first by itself; this does it without restoring again.
    """
    from monarch.cli.render.backups import Recovered, show  # noqa: PLC0415

    environment = session.environment(env)
    if environment.protected:
        confirm = confirm_name(environment.name, "recover an interrupted restore", confirm)
    done = monarch.recover(session.config, env, confirm=confirm, lock_timeout=lock_timeout,
                           lock_lease=lock_lease, reporter=notices())
    show(Recovered(env, done))


@click.command()
@click.argument("envs", metavar="[ENV]...", nargs=-1)
@click.option("--max-age", default="26h", show_default=True, metavar="AGE",
              help="Fail when the newest backup finished longer ago (e.g. 26h, 90m, 2d).")
@click.option("--min-size", metavar="SIZE",
              help="Fail when the newest backup's archive is smaller (e.g. 10MB).")
@click.option("--min-ratio", type=float, default=0.5, show_default=True, metavar="R",
              help="Fail when it is smaller than R times the median of the 5 before it "
                   "(0 turns this off).")
@_as_json
@click.pass_obj
def check_backups(session: Session, *, envs: tuple[str, ...], max_age: str,
                  min_size: str | None, min_ratio: float, as_json: bool) -> int:
    """Check that ENV's backups are still happening (exit 1 with a reason per failing ENV).

    Each ENV's newest complete backup must be younger than --max-age, not too small, and
    the environment's last verify must not have failed. Without ENV: every environment
    that has backups in the store. For cron, CI and monitoring.
    """
    from monarch.cli.render.backups import show  # noqa: PLC0415

    report = monarch.check_backups(session.config, list(envs) or None, max_age=max_age,
                                   min_size=min_size, min_ratio=min_ratio)
    show(report, as_json=as_json)
    return 0 if report.ok else 1


COMMANDS = [
    backup, list_backups, verify, prune, delete_backup, generate_query_set, restore, copy_db,
    recover, check_backups,
]
