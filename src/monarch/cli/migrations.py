"""Migration commands (filled in by the migrations work)."""

from __future__ import annotations

import click

from monarch.cli.session import Session
from monarch.errors import NotImplementedYet


def _not_yet(what: str) -> NotImplementedYet:
    return NotImplementedYet(f"`monarch {what}` is not available in this version yet")


@click.command()
@click.argument("name")
def generate(name: str) -> None:
    """Write a new migration file NAME."""
    raise _not_yet("generate")


@click.command()
@click.argument("env")
@click.pass_obj
def list_migrations(session: Session, env: str) -> None:
    """Show every migration and its state on ENV."""
    session.environment(env)
    raise _not_yet("list_migrations")


@click.command()
@click.argument("env")
@click.pass_obj
def migrate(session: Session, env: str) -> None:
    """Run the pending migrations on ENV."""
    session.environment(env)
    raise _not_yet("migrate")


@click.command()
@click.argument("name")
@click.argument("env")
@click.pass_obj
def migrate_one(session: Session, name: str, env: str) -> None:
    """Run exactly migration NAME on ENV."""
    session.environment(env)
    raise _not_yet("migrate_one")


COMMANDS = [generate, list_migrations, migrate, migrate_one]
