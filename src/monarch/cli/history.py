"""History commands: baseline, mark, accept (repairs, each audited) and history (the timeline).

Each parses its arguments, calls one function of :mod:`monarch.api.history` and prints the
result; the library does every check (including the final word on protected environments).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from monarch.api.history import accept as run_accept
from monarch.api.history import baseline as run_baseline
from monarch.api.history import list_history
from monarch.api.history import mark as run_mark
from monarch.cli.output import confirm_name, echo_json, lock_options, notices, table, yes_option
from monarch.cli.session import Session
from monarch.history import Change
from monarch.migrations.repair import CHECKSUM
from monarch.migrations.results import when

if TYPE_CHECKING:
    from monarch.migrations.repair import RepairResult

_confirm = click.option(
    "--confirm", metavar="ENVNAME", help="Confirm a protected environment by name."
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _confirmed(session: Session, env: str, action: str, confirm: str | None) -> str | None:
    environment = session.environment(env)
    if environment.protected:
        return confirm_name(environment.name, action, confirm)
    return confirm


@click.command()
@click.argument("env")
@click.option("--to", "to", metavar="NAME", required=True,
              help="The last migration to record as applied.")
@_confirm
@yes_option
@lock_options
@_as_json
@click.pass_obj
def baseline(session: Session, /, env: str, to: str, confirm: str | None, as_json: bool,
             **lock: Any) -> None:
    """Record every migration up to NAME as applied on ENV, without running any.

    For a database that already has their changes (adopting monarch). Audited: `monarch
    history ENV` shows who did it, when and what changed.
    """
    confirm = _confirmed(session, env, f"baseline it up to {to}", confirm)
    result = run_baseline(session.config, env, to=to, confirm=confirm, reporter=notices(), **lock)
    _report(result, as_json, "nothing to record: every migration up to it is applied already")


@click.command()
@click.argument("env")
@click.argument("name")
@click.option("--applied/--pending", "applied", default=None,
              help="Record NAME as applied (without running it), or as pending (runs again).")
@_confirm
@yes_option
@lock_options
@_as_json
@click.pass_obj
def mark(session: Session, /, env: str, name: str, *, applied: bool | None,
         confirm: str | None, as_json: bool, **lock: Any) -> None:
    """Record migration NAME on ENV as applied or as pending, without running anything."""
    if applied is None:
        raise click.UsageError("say which: --applied or --pending")
    state = "applied" if applied else "pending"
    confirm = _confirmed(session, env, f"mark {name} {state}", confirm)
    result = run_mark(session.config, env, name, applied=applied, confirm=confirm,
                      reporter=notices(), **lock)
    _report(result, as_json, f"nothing to change: it is {state} already")


@click.command()
@click.argument("env")
@click.argument("name")
@_confirm
@yes_option
@lock_options
@_as_json
@click.pass_obj
def accept(session: Session, /, env: str, name: str, confirm: str | None, as_json: bool,
           **lock: Any) -> None:
    """Accept the edited file of applied migration NAME on ENV (its drift was deliberate).

    Its checksum now is recorded; the migration does not run again.
    """
    confirm = _confirmed(session, env, f"accept the edited {name}", confirm)
    result = run_accept(session.config, env, name, confirm=confirm, reporter=notices(), **lock)
    _report(result, as_json, "nothing to accept: its file is as it was applied")


@click.command()
@click.argument("env")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Show the N newest.")
@_as_json
@click.pass_obj
def history(session: Session, env: str, limit: int | None, as_json: bool) -> None:
    """Show ENV's history, newest first: migration runs, failures, rollbacks, restores, copies,
    drops and history repairs (who, when, from which machine, what changed)."""
    report = list_history(session.config, env, limit=limit)
    if as_json:
        echo_json(report.to_json())
        return
    if not report.entries:
        click.echo(f"No history on {env} yet.")
        return
    rows = [
        (when(e.at) or "(0.0.x)", e.kind, e.who, e.summary) for e in report.entries
    ]
    click.echo(table(("WHEN", "WHAT", "WHO", "DETAIL"), rows))
    for entry in report.entries:
        for change in entry.changes if len(entry.changes) > 1 else ():
            click.echo(f"  {entry.kind} {when(entry.at)}: {_shown(change)}")


def _report(result: RepairResult, as_json: bool, unchanged: str) -> None:
    if as_json:
        echo_json(result.to_json())
        return
    if not result.changed:
        click.echo(f"{result.environment}: {unchanged}.")
        return
    event = result.event
    assert event is not None
    click.echo(f"{result.environment}: {event.summary}.")
    for change in result.changes:
        click.echo(f"  {_shown(change)}")
    click.echo(f"Recorded in the history of {result.environment} (`monarch history "
               f"{result.environment}`).")


def _shown(change: Change) -> str:
    """A change in one line; checksums cut to their first 12 digits (--json has them whole)."""
    if change.what != CHECKSUM:
        return change.describe()
    old, new = (change.before or "-")[:12], (change.after or "-")[:12]
    return f"{change.subject}: checksum {old}... -> {new}..."


COMMANDS: list[Callable[..., Any]] = [baseline, mark, accept, history]
