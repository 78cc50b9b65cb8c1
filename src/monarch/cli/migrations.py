"""Migration commands: generate, list_migrations, migrate, migrate_one, rollback, unlock.

Each command calls one function of :mod:`monarch.api.migrations` and shows its result through
:mod:`monarch.cli.render`; the library does every check (including the final word on protected
environments).

Commands call the library through :mod:`monarch`'s lazily imported names and import their
renderers (:mod:`monarch.cli.render.migrations`, which import the library's result types) when
they run: the only imports inside functions, so that building the command line loads
neither (tests/core/test_startup.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

import monarch
from monarch.cli.output import confirm_name
from monarch.cli.progress import progress_for
from monarch.cli.session import Session
from monarch.engines import registry
from monarch.errors import UsageError
from monarch.migrations.progress import StreamReporter

if TYPE_CHECKING:
    from monarch.migrations.progress import StreamReporter

F = TypeVar("F", bound=Callable[..., Any])

# Exit code of `list_migrations --check` when there is work to do (0: none; 1/2: errors).
PENDING_EXIT = 3


def _run_options(func: F) -> F:
    """Options shared by the commands that change an environment."""
    options = [
        click.option("--dry-run", is_flag=True, help="Print the plan; change nothing."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask questions."),
        click.option(
            "--confirm",
            metavar="ENVNAME",
            help="Confirm a protected environment by name (needed without a terminal).",
        ),
        click.option(
            "--lock-timeout",
            type=click.FloatRange(min=0),
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="How long to wait for another run's lock (0: do not wait).",
        ),
        click.option(
            "--lock-lease",
            type=click.FloatRange(min=1),
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="How long the lock outlives this process if it dies.",
        ),
        click.option(
            "--backup/--no-backup",
            default=None,
            help="Back up the environment first (default: its backup_before_migrate).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@click.argument("name")
@click.option(
    "--engine",
    type=click.Choice([row.name for row in registry.engines()]),
    help="The template's engine (default: the one all environments use).",
)
@click.option(
    "--sql",
    is_flag=True,
    help="Write a plain .sql file "
    f"({', '.join(row.display for row in registry.engines() if row.sql_files)}).",
)
@click.pass_obj
def generate(session: Session, name: str, engine: str | None, sql: bool) -> None:
    """Write a new migration file (alias: create).

    The file is migrations/<UTC timestamp>_NAME.py (.sql with --sql); NAME must be snake_case
    and unused. The template is that of the engine all environments use; a project with
    environments of several engines needs --engine.
    """
    from monarch.cli.render.migrations import MigrationCreated, show  # noqa: PLC0415

    show(MigrationCreated(monarch.generate(session.config, name, engine=engine, sql=sql)))


@click.command()
@click.argument("env")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--check", is_flag=True, help="Exit with code 3 when anything is pending or failed.")
@click.option(
    "--verbose", "-v", is_flag=True,
    help="Also show what each migration's last run wrote, per collection or table.",
)
@click.pass_obj
def list_migrations(session: Session, env: str, as_json: bool, check: bool, verbose: bool) -> int:
    """Show each migration's state on ENV (alias: status).

    States: pending, applied, changed (file edited since), failed, running, interrupted,
    missing (recorded, file gone). --check exits 3 when anything needs to run. --verbose adds
    the documents/rows each migration's last run inserted, matched, modified, upserted and
    deleted, and the indexes it created or dropped (--json always has them).
    """
    from monarch.cli.render.migrations import Verbose, show  # noqa: PLC0415

    report = monarch.list_migrations(session.config, env)
    show(Verbose(report) if verbose else report, as_json=as_json)
    return PENDING_EXIT if check and report.needs_work else 0


@click.command()
@click.argument("env")
@click.option("--to", "to", metavar="NAME", help="Stop after this migration.")
@click.option("--strict", is_flag=True, help="Fail when an applied migration's file changed.")
@_run_options
@click.pass_obj
def migrate(session: Session, /, env: str, to: str | None, strict: bool, **options: Any) -> None:
    """Run the pending migrations on ENV, in order.

    Each runs once and is recorded in monarch_migrations (a collection, or a table); the
    first failure stops the run. A lock keeps two runs from overlapping.
    """
    from monarch.cli.render.migrations import show  # noqa: PLC0415

    arguments = _run_arguments(session, env, "migrate", options)
    result = monarch.migrate(session.config, env, to=to, strict=strict, **arguments)
    show(result)


@click.command()
@click.argument("name")
@click.argument("env")
@click.option(
    "--record-only",
    is_flag=True,
    help="Record NAME as applied without running it (its changes are known to be made).",
)
@_run_options
@click.pass_obj
def migrate_one(
    session: Session, /, name: str, env: str, record_only: bool, **options: Any
) -> None:
    """Run exactly migration NAME on ENV.

    It runs even if it was applied already, and is recorded.
    """
    from monarch.cli.render.migrations import show  # noqa: PLC0415

    arguments = _run_arguments(session, env, "migrate", options)
    result = monarch.migrate_one(session.config, name, env, record_only=record_only, **arguments)
    show(result)


@click.command()
@click.argument("env")
@click.option("--to", "to", metavar="NAME", help="Roll back everything after NAME.")
@click.option("--steps", type=click.IntRange(min=1), help="Roll back this many (default 1).")
@click.option("--strict", is_flag=True, help="Fail when an applied migration's file changed.")
@_run_options
@click.pass_obj
def rollback(
    session: Session,
    /,
    env: str,
    to: str | None,
    steps: int | None,
    strict: bool,
    **options: Any,
) -> None:
    """Undo applied migrations on ENV, newest first.

    Runs their rollback() methods or SQL rollback sections (default: the last one applied);
    if one of them has none, nothing runs.
    """
    from monarch.cli.render.migrations import show  # noqa: PLC0415

    arguments = _run_arguments(session, env, "roll back", options)
    result = monarch.rollback(session.config, env, to=to, steps=steps, strict=strict, **arguments)
    show(result)


@click.command()
@click.argument("env")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--confirm", metavar="ENVNAME", help="Confirm a protected environment by name.")
@click.pass_obj
def unlock(session: Session, env: str, yes: bool, confirm: str | None) -> None:
    """Clear ENV's migration lock (its holder is gone).

    A migrate that was killed leaves the lock until its lease expires; this clears it now.
    """
    from monarch.cli.render.migrations import show  # noqa: PLC0415

    environment = session.environment(env)
    if environment.protected:
        confirm = confirm_name(environment.name, "unlock it", confirm)
    elif not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "unlock clears a lock another process may still hold; pass --yes to confirm"
            )
        click.confirm(
            f"Clear the migration lock of {env!r}? Do it only if its holder is gone.",
            abort=True,
            err=True,
        )
    show(monarch.unlock(session.config, env, confirm=confirm))


def _run_arguments(
    session: Session, env: str, action: str, options: dict[str, Any]
) -> dict[str, Any]:
    """The library arguments that the :func:`_run_options` give: confirm, reporter and the rest.

    A dry run needs no confirmation; a protected environment asks for its name on a terminal,
    and ``--yes`` never stands in for typing it.
    """
    environment = session.environment(env)
    confirm: str | None = options["confirm"]
    if not options["dry_run"] and environment.protected:
        confirm = confirm_name(environment.name, action, confirm)
    return {
        "confirm": confirm,
        "reporter": _reporter(),
        "dry_run": options["dry_run"],
        "backup": options["backup"],
        "lock_timeout": options["lock_timeout"],
        "lock_lease": options["lock_lease"],
    }


@click.command()
@click.argument("env")
@click.option("--into", metavar="ENV2",
              help="Make the scratch database on ENV2's server (default: ENV's rehearse_into).")
@click.option("--from-backup", metavar="NAME|latest",
              help="Copy from this backup of ENV (latest: the newest), not from ENV itself.")
@click.option("--query-set", metavar="NAME", help="Copy ENV through query set NAME.")
@click.option("--keep", is_flag=True, help="Keep the scratch database afterwards.")
@click.option("--report", metavar="FILE.md", type=click.Path(dir_okay=False),
              help="Also write the result as a Markdown report (for a pull request).")
@click.option("--identity", metavar="FILE", help="age identity of an encrypted backup.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def rehearse(session: Session, /, env: str, **options: Any) -> int:
    """Rehearse ENV's pending migrations on a throwaway copy; ENV is not changed.

    Copies ENV (or a backup of it) into a new scratch database on another server (--into, or
    ENV's rehearse_into setting; ENV's own only when it is local and not protected), runs the
    pending migrations there with their times and writes, and where every one has a
    rollback, rolls them back, checks that the data is exactly as before, and migrates again.
    The scratch database is removed afterwards, also on failure or Ctrl-C (unless --keep).
    Exit codes: 0 clean, 1 a migration failed, 4 a rollback did not restore the data.
    """
    from monarch.cli.render.rehearsal import show, write_report  # noqa: PLC0415

    as_json, report = options.pop("as_json"), options.pop("report")
    result = monarch.rehearse(
        session.config, env, **options, progress=progress_for(sys.stderr, quiet=as_json),
        reporter=StreamReporter(sys.stderr, sys.stderr, tty=sys.stderr.isatty()),
    )
    if report is not None:
        write_report(result, Path(report))
    show(result, as_json=as_json)
    return int(result.exit_code)


def _reporter() -> StreamReporter:
    return StreamReporter(sys.stdout, sys.stderr, tty=sys.stderr.isatty())




COMMANDS = [generate, list_migrations, migrate, migrate_one, rollback, rehearse, unlock]
