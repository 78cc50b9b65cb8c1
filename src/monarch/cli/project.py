"""``monarch init`` and ``monarch list_environments``.

Commands call the library through :mod:`monarch`'s lazily imported names and import their
renderers (:mod:`monarch.cli.render.project`, which import the library's result types) when
they run (``init`` the configuration's file name too): the only imports inside functions, so
that building the command line loads none of them (tests/core/test_startup.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

import monarch
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
    from monarch.cli.render.project import show  # noqa: PLC0415
    from monarch.config import CONFIG_NAME  # noqa: PLC0415

    root = Path(folder)
    if (root / CONFIG_NAME).exists() and not force and sys.stdin.isatty():
        force = click.confirm(f"{root / CONFIG_NAME} exists. Overwrite it?", default=False)
        if not force:
            raise click.exceptions.Abort()
    show(monarch.init_project(root, force=force, from_settings=from_settings))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def list_environments(session: Session, as_json: bool) -> None:
    """Show each environment: engine, host, database, protected."""
    from monarch.cli.render.project import Environments, show  # noqa: PLC0415

    show(Environments(monarch.list_environments(session.config)), as_json=as_json)


COMMANDS = [init, list_environments]
