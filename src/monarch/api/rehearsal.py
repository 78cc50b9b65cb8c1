"""``monarch.rehearse``: run an environment's pending migrations on a throwaway copy first.

The copy is a scratch database (:mod:`monarch.backups.scratch`) on a server the user names,
filled from the environment itself (optionally through a query set) or from a backup; the
migrations run there through :func:`~monarch.api.migrations.migrate` and
:func:`~monarch.api.migrations.rollback`, aimed at the scratch database; :mod:`monarch.rehearsal`
decides what to run and judges it. The environment itself is only read (and not even that
with ``from_backup``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from monarch.api.migrations import migrate, rollback
from monarch.backups.catalog import scan
from monarch.backups.copy import copy_db
from monarch.backups.keys import keys_for
from monarch.backups.querysets import query_set_for
from monarch.backups.restore import restore
from monarch.backups.scratch import Scratch, scratch
from monarch.engines import engine_for, registry
from monarch.errors import BackupNotFound, ConfigError, Terminated, UsageError
from monarch.migrations.discovery import MigrationFile, discover
from monarch.progress import Relabelled
from monarch.rehearsal import Rehearsal, Runs, rehearse_in
from monarch.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from monarch.config import Config, Environment
    from monarch.engines.base import Engine
    from monarch.migrations.progress import Reporter
    from monarch.progress import Progress
    from monarch.querysets.plan import QueryPlan

LATEST = "latest"


def rehearse(
    config: Config,
    env_name: str,
    *,
    into: str | None = None,
    from_backup: str | None = None,
    query_set: str | QueryPlan | None = None,
    keep: bool = False,
    reporter: Reporter | None = None,
    progress: Progress | None = None,
    identity: str | Path | None = None,
) -> Rehearsal:
    """Rehearse ``env_name``'s pending migrations on a copy; change nothing in it.

    The copy is a new scratch database on the server of environment ``into`` (default: the
    environment's ``rehearse_into`` setting; without either, its own server, which must be
    neither protected nor remote). It is made from the environment (through ``query_set``,
    if given: a subset, or a masked copy) or, with ``from_backup`` (a backup's name, or
    ``"latest"``: the environment's newest), from that backup, so that the environment's server
    is not read at all (``identity`` opens an encrypted one).

    Then the pending migrations run there as ``migrate`` would run them, each one's wall time
    and writes kept; where every one has a rollback, they are all rolled back, the copy is
    compared with its state before (per collection or table: count and content hash), and
    they run again. The scratch database is removed at the end, also on failure, Ctrl-C or
    SIGTERM, unless ``keep``. Returns a :class:`~monarch.rehearsal.Rehearsal`: a failed
    migration or a rollback that does not restore the data is an answer (``exit_code`` 1 or
    4), not an exception; ``reporter`` hears each run as it goes, ``progress`` the copy.
    """
    environment = config.environment(env_name)
    if from_backup is not None and query_set is not None:
        raise UsageError("a query set shapes a copy of the environment; a backup is restored "
                         "as it was made", hint="give --from-backup or --query-set, not both")
    server = _server(config, environment, into)
    files = discover(config.migrations_dir)  # a broken migration file fails before any copy
    try:
        with scratch(server, keep=keep, purpose=f"rehearse {environment.name}") as space:
            return _rehearse_in(config, environment, server, space, files, query_set=query_set,
                                from_backup=from_backup, reporter=reporter, progress=progress,
                                identity=identity)
    except KeyboardInterrupt as exc:
        left = "kept" if keep else "removed"
        raise Terminated.of(
            exc, f"stopped the rehearsal of {environment.name!r}, which was not changed; "
            f"its scratch database was {left}",
            hint=f"run `monarch rehearse {environment.name}` again when ready") from exc


def _rehearse_in(
    config: Config,
    environment: Environment,
    server: Environment,
    space: Scratch,
    files: list[MigrationFile],
    *,
    query_set: str | QueryPlan | None,
    from_backup: str | None,
    reporter: Reporter | None,
    progress: Progress | None,
    identity: str | Path | None,
) -> Rehearsal:
    """The rehearsal in scratch database ``space``: the runs aimed at it, and how to fill it."""
    row = registry.by_name(environment.engine)
    aimed = replace(config, environments={**config.environments, space.name: space.environment})
    runs = Runs(
        plan=lambda: migrate(aimed, space.name, dry_run=True),
        migrate=lambda: migrate(aimed, space.name, backup=False, reporter=reporter),
        rollback=lambda steps: rollback(aimed, space.name, steps=steps, backup=False,
                                        reporter=reporter),
        records=lambda: space.engine.history().records(),
    )

    def fill() -> str:
        if from_backup is not None:
            made = _restore(config, environment, from_backup, space.engine,
                            progress=progress, identity=identity)
            return f"backup {made}"
        used = _copy(config, environment, query_set, space.engine, progress)
        through = f" through query set {used}" if used is not None else ""
        return f"environment {environment.name}{through}"

    return rehearse_in(
        space, runs, files, environment=environment.name, server=server.name, fill=fill,
        removed=space.removed, noun=row.noun if row else "collection",
        unit=row.unit if row else "document",
    )


def _server(config: Config, environment: Environment, into: str | None) -> Environment:
    """The environment whose server gets the scratch database (see :func:`rehearse`)."""
    named = into or environment.rehearse_into
    if named:
        try:
            server = config.environment(named)
        except ConfigError as exc:
            if into is not None:
                raise
            raise ConfigError(
                f"environments.{environment.name}.rehearse_into names {named!r}, which is no "
                "environment of this project", hint=exc.hint) from None
        if server.engine != environment.engine:
            raise UsageError(
                f"{environment.name!r} is a {_display(environment)} database and {named!r} a "
                f"{_display(server)} one: a rehearsal needs a server of the same kind",
                hint="name an environment of the same engine")
        return server
    if environment.protected or environment.remote_host:
        why = (f"it is protected ({environment.protected_reason})" if environment.protected
               else f"its host {environment.remote_host} is not local")
        raise UsageError(
            f"rehearse writes a scratch database on a server, and will not write on the "
            f"server of {environment.name!r} unasked: {why}; nothing was done",
            hint=f"name the server to use: --into ENV, or rehearse_into = \"ENV\" under "
            f"[environments.{environment.name}] in monarch.toml")
    return environment


def _copy(config: Config, environment: Environment, query_set: str | QueryPlan | None,
          target: Engine, progress: Progress | None) -> str | None:
    """Copy the environment into ``target`` (through ``query_set``); its history too, where
    the query set left it out: the copy must have the environment's pending migrations."""
    source = engine_for(environment)
    try:
        plan = query_set_for(config, query_set, source) if query_set is not None else None
        copy_db(source, target, query_set=plan,
                progress=_step(progress, f"copying {environment.name}"))
        theirs = source.history().records()
        history = target.history()
        ours = history.records()
        for name, record in theirs.items():
            if name not in ours:
                history.save(record)
        return plan.name if plan is not None else None
    finally:
        source.close()


def _restore(config: Config, environment: Environment, name: str, target: Engine, *,
             progress: Progress | None, identity: str | Path | None) -> str:
    """Restore backup ``name`` (``latest``: the environment's newest) into ``target``; the
    backup's name."""
    store = open_store(config.backups)
    if name == LATEST:
        found = sorted(scan(store, environment.name).backups, key=lambda b: b.created)
        if not found:
            raise BackupNotFound(
                f"there is no backup of {environment.name!r} in the store to rehearse on",
                hint=f"make one (`monarch backup {environment.name}`), or rehearse on a copy "
                "of the environment itself (without --from-backup)")
        name = found[-1].name
    restore(store, target, name, progress=_step(progress, f"restoring {name}"),
            keys=keys_for(config.backups, identity=identity))
    return name


def _step(progress: Progress | None, doing: str) -> Progress | None:
    """``progress`` for a step of the rehearsal: it is the rehearsal the user ran, not the
    copy or restore that fills its scratch database, so the lines say ``rehearse: copying``."""
    return None if progress is None else Relabelled(progress, f"rehearse: {doing}")


def _display(environment: Environment) -> str:
    row = registry.by_name(environment.engine)
    return row.display if row else environment.engine
