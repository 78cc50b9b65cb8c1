"""``monarch init`` and ``monarch list_environments``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from monarch.cli.output import echo_json, table
from monarch.cli.session import Session


@click.command()
@click.option("--force", is_flag=True, help="Overwrite an existing monarch.toml.")
@click.option(
    "--from-settings",
    is_flag=True,
    help="Convert the original tool's migrations/settings.py into monarch.toml.",
)
@click.option(
    "--dir", "folder", default=".", type=click.Path(file_okay=False), help="Project root."
)
def init(force: bool, from_settings: bool, folder: str) -> None:
    """Write monarch.toml and the migrations/ and querysets/ folders."""
    from monarch.config import CONFIG_NAME
    from monarch.project import init_project

    root = Path(folder)
    if (root / CONFIG_NAME).exists() and not force and sys.stdin.isatty():
        force = click.confirm(f"{root / CONFIG_NAME} exists. Overwrite it?", default=False)
        if not force:
            raise click.exceptions.Abort()
    result = init_project(root, force=force, from_settings=from_settings)
    for path in result.created:
        click.echo(f"created {path}")
    click.echo("\nNext:")
    for step in result.next_steps:
        click.echo(f"  {step}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def list_environments(session: Session, as_json: bool) -> None:
    """Show each environment: engine, host, database, protected."""
    from monarch.project import list_environments as list_envs

    envs = list_envs(session.config)
    if as_json:
        echo_json(
            [
                {
                    "name": e.name,
                    "engine": e.engine,
                    "host": e.host,
                    "database": e.database,
                    "protected": e.protected,
                    "protected_reason": e.protected_reason,
                    "url": e.display_url or None,
                    "missing_variables": list(e.missing),
                }
                for e in envs
            ]
        )
        return
    if not envs:
        click.echo("No environments configured; add one under [environments] in monarch.toml.")
        return
    rows = [
        (
            e.name,
            e.engine or "?",
            e.host or "-",
            e.database or "-",
            f"yes ({e.protected_reason})" if e.protected else "no",
        )
        for e in envs
    ]
    click.echo(table(("NAME", "ENGINE", "HOST", "DATABASE", "PROTECTED"), rows))
    for e in envs:
        if e.missing:
            names = ", ".join(f"${{{name}}}" for name in e.missing)
            click.echo(f"Note: {e.name} needs {names}, which is not set here; commands on it stop")


COMMANDS = [init, list_environments]
