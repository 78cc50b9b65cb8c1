"""Commands kept from the original tool: list_query_sets and drop_db. Each calls one function of
:mod:`monarch.api.backups` and prints the result."""

from __future__ import annotations

import click

from monarch.cli.output import confirm_name, echo_json, table, yes_option
from monarch.cli.session import Session
from monarch.engines import registry


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def list_query_sets(session: Session, as_json: bool) -> None:
    """List the query sets in querysets/: files, and classes based on monarch.QuerySet."""
    from monarch.api.backups import list_query_sets as run_list

    config = session.config
    found = run_list(config)
    if as_json:
        echo_json([{"name": q.name, "kind": q.kind, "path": str(q.path)} for q in found])
        return
    if not found:
        click.echo(f"No query sets in {config.querysets_dir}.")
        click.echo("Create one with: monarch generate_query_set NAME")
        return
    kinds = {"module": "file", "class": "class (monarch.QuerySet)"}
    rows = [(q.name, kinds.get(q.kind, q.kind), q.path.name) for q in found]
    click.echo(table(("NAME", "KIND", "FILE"), rows))
    click.echo("Use one with: --query-set NAME (backup, copy_db)")


@click.command()
@click.argument("env")
@click.option(
    "--confirm", metavar="NAME", help="Type the protected environment's name (for scripts and CI)."
)
@yes_option
@click.pass_obj
def drop_db(session: Session, *, env: str, confirm: str | None) -> None:
    """Drop ENV's database and everything in it (PostgreSQL: replace it by an empty one)."""
    from monarch.api.backups import drop_db as run_drop

    environment = session.environment(env)
    if environment.protected:
        confirm = confirm_name(environment.name, f"drop its database {environment.database}",
                               confirm)
    result = run_drop(session.config, env, confirm=confirm)
    if result.recovered:
        click.echo(f"First: {result.recovered}")
    if not result.existed:
        click.echo(f"{env}'s database {result.database} does not exist; nothing to drop.")
        return
    count = len(result.removed)
    row = registry.by_name(environment.engine)
    noun = row.noun if row is not None else "table"
    noun += "" if count == 1 else "s"
    click.echo(f"Dropped {env}'s database {result.database}: {result.how}.")
    click.echo(f"  it held {count} {noun}" + (f": {', '.join(result.removed)}" if count else ""))


COMMANDS = [list_query_sets, drop_db]
