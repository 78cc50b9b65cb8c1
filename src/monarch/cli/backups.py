"""Backup commands (filled in by the backups work)."""

from __future__ import annotations

import click

from monarch.cli.session import Session
from monarch.errors import NotImplementedYet


def _not_yet(what: str) -> NotImplementedYet:
    return NotImplementedYet(f"`monarch {what}` is not available in this version yet")


@click.command()
@click.argument("env")
@click.pass_obj
def backup(session: Session, env: str) -> None:
    """Back up ENV's database into the backup store."""
    session.environment(env)
    raise _not_yet("backup")


@click.command()
@click.argument("env", required=False)
@click.pass_obj
def list_backups(session: Session, env: str | None) -> None:
    """List the complete backups in the store."""
    session.config  # noqa: B018 - loads and validates the config
    raise _not_yet("list_backups")


@click.command()
@click.argument("spec", metavar="BACKUP:ENV")
@click.pass_obj
def restore(session: Session, spec: str) -> None:
    """Restore BACKUP into ENV."""
    session.config  # noqa: B018
    raise _not_yet("restore")


@click.command()
@click.argument("spec", metavar="FROM:TO")
@click.pass_obj
def copy_db(session: Session, spec: str) -> None:
    """Copy FROM's database into TO."""
    session.config  # noqa: B018
    raise _not_yet("copy_db")


COMMANDS = [backup, list_backups, restore, copy_db]
