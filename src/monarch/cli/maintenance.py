"""Commands kept from the original tool: list_query_sets and drop_db. Each calls one function of
:mod:`monarch.api.backups` and prints the result.

Commands call the library through :mod:`monarch`'s lazily imported names and import their
renderers (:mod:`monarch.cli.render.backups`, which import the library's result types) when
they run: the only imports inside functions, so that building the command line loads
neither (tests/core/test_startup.py).
"""

from __future__ import annotations

import click

import monarch
from monarch.cli.output import confirm_name, lock_options, notices, yes_option
from monarch.cli.session import Session


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def list_query_sets(session: Session, as_json: bool) -> None:
    """List the query sets in querysets/: files, and classes based on monarch.QuerySet."""
    from monarch.cli.render.backups import QuerySets, show  # noqa: PLC0415

    config = session.config
    show(QuerySets(monarch.list_query_sets(config), config.querysets_dir), as_json=as_json)


@click.command()
@click.argument("env")
@click.option(
    "--confirm", metavar="NAME", help="Type the protected environment's name (for scripts and CI)."
)
@yes_option
@lock_options
@click.pass_obj
def drop_db(
    session: Session, *, env: str, confirm: str | None, lock_timeout: float, lock_lease: float
) -> None:
    """Drop ENV's database and everything in it (PostgreSQL: replace it by an empty one)."""
    from monarch.cli.render.backups import DropReport, show  # noqa: PLC0415

    environment = session.environment(env)
    if environment.protected:
        confirm = confirm_name(environment.name, f"drop its database {environment.database}",
                               confirm)
    dropped = monarch.drop_db(session.config, env, confirm=confirm, lock_timeout=lock_timeout,
                              lock_lease=lock_lease, reporter=notices())
    show(DropReport(env, environment.engine, dropped))


COMMANDS = [list_query_sets, drop_db]
