"""The migration commands as library calls: one function per command, each returning a result.

::

    import monarch

    config = monarch.load_config()
    result = monarch.migrate(config, "production", confirm="production")
    print(result.ran)

Every function raises a :class:`~monarch.errors.MonarchError` on failure and never prints; pass a
``reporter`` (see :mod:`monarch.migrations.progress`) to follow a run as it happens (by default
events go to the ``monarch.migrations`` logger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monarch.api.backups import backup
from monarch.engines import engine_for
from monarch.errors import (
    MigrationError,
    MigrationFailed,
    Terminated,
    TransactionUnsupported,
    UsageError,
)
from monarch.history import ROLLBACK, HistoryStore, Record
from monarch.migrations import planning
from monarch.migrations.discovery import MigrationFile, discover, missing_mongoengine_hint
from monarch.migrations.generate import new_migration, template_engine
from monarch.migrations.lease import DEFAULT_LEASE, DEFAULT_TIMEOUT, MIN_LEASE, Lease, current_owner
from monarch.migrations.migration import ENGINE_NAMES
from monarch.migrations.progress import LoggingReporter, Reporter
from monarch.migrations.results import RunResult, StatusReport, UnlockResult, when
from monarch.migrations.runner import Runner, mark_interrupted
from monarch.safety import require_confirmation

if TYPE_CHECKING:
    from monarch.config import Config, Environment

Planner = Callable[[list[MigrationFile], dict[str, Record]], planning.Plan]


def generate(
    config: Config,
    name: str,
    *,
    engine: str | None = None,
    sql: bool = False,
    now: datetime | None = None,
) -> Path:
    """Write a new migration ``<UTC timestamp>_<name>.py`` from a template; return its path.

    The template is the engine's (``engine``: ``mongo``, ``postgres`` or ``sqlite``); without
    ``engine``, the engine that every environment of ``config`` uses (a UsageError when they
    use several). ``sql`` writes ``<UTC timestamp>_<name>.sql`` instead, for PostgreSQL and
    SQLite environments. ``name`` must be snake_case and not used by another migration; nothing
    is overwritten.
    """
    chosen = template_engine(config.environments, engine, sql=sql)
    return new_migration(config.migrations_dir, name, now, engine=chosen, sql=sql)


def list_migrations(config: Config, environment: str) -> StatusReport:
    """Every migration, in order, with its state on ``environment``, and who holds the lock."""
    env = config.environment(environment)
    files = discover(config.migrations_dir)
    engine = engine_for(env)
    try:
        records = engine.history().records()
        holder = engine.migration_lock().holder()
    finally:
        engine.close()
    statuses = planning.statuses(files, records, holder)
    return StatusReport(env.name, tuple(statuses), holder)


def migrate(
    config: Config,
    environment: str,
    *,
    to: str | None = None,
    dry_run: bool = False,
    strict: bool = False,
    confirm: str | None = None,
    backup: bool | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Reporter | None = None,
) -> RunResult:
    """Run the pending migrations of ``environment`` in order, each exactly once.

    ``to`` stops after that migration. ``dry_run`` only plans (nothing is written, no lock is
    taken). ``strict`` makes drift (an applied file that changed) an error. A protected
    environment needs ``confirm`` equal to its name. ``backup`` (default: the environment's
    ``backup_before_migrate``) makes a backup first when there is anything to run. Waits up to
    ``lock_timeout`` seconds for the lock; ``lock_lease`` is how long the lock outlives a
    process that dies. Raises MigrationFailed (with ``.result``) when a migration fails.
    """
    return _execute(
        config,
        environment,
        "migrate",
        lambda files, records: planning.plan_migrate(files, records, to, environment=environment),
        dry_run=dry_run,
        strict=strict,
        confirm=confirm,
        backup=backup,
        lock_timeout=lock_timeout,
        lock_lease=lock_lease,
        reporter=reporter,
    )


def migrate_one(
    config: Config,
    name: str,
    environment: str,
    *,
    dry_run: bool = False,
    confirm: str | None = None,
    backup: bool | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Reporter | None = None,
    record_only: bool = False,
) -> RunResult:
    """Run exactly migration ``name`` on ``environment``, even if it was applied, and record it.

    ``name`` may be the full name, the part after the timestamp, or the timestamp.
    ``record_only`` records it as applied without running it: for a migration whose changes
    are known to be made (say, one that monarch 0.0.x left ``Processing`` after it finished).
    """
    return _execute(
        config,
        environment,
        "migrate_one",
        lambda files, records: planning.plan_one(files, records, name, record_only=record_only),
        dry_run=dry_run,
        strict=False,
        confirm=confirm,
        backup=backup,
        lock_timeout=lock_timeout,
        lock_lease=lock_lease,
        reporter=reporter,
    )


def rollback(
    config: Config,
    environment: str,
    *,
    to: str | None = None,
    steps: int | None = None,
    dry_run: bool = False,
    strict: bool = False,
    confirm: str | None = None,
    backup: bool | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    lock_lease: float = DEFAULT_LEASE,
    reporter: Reporter | None = None,
) -> RunResult:
    """Run ``rollback()`` of applied migrations, most recently applied first.

    ``steps`` rolls back that many (default 1); ``to`` rolls back everything after that
    migration (which stays applied). If any of them has no ``rollback()``, nothing runs.
    """
    return _execute(
        config,
        environment,
        "rollback",
        lambda files, records: planning.plan_rollback(files, records, to=to, steps=steps),
        dry_run=dry_run,
        strict=strict,
        confirm=confirm,
        backup=backup,
        lock_timeout=lock_timeout,
        lock_lease=lock_lease,
        reporter=reporter,
    )


def unlock(config: Config, environment: str, *, confirm: str | None = None) -> UnlockResult:
    """Clear the migration lock of ``environment`` (for a holder that is gone).

    A protected environment needs ``confirm`` equal to its name. A migration that the cleared
    holder left ``running`` is marked interrupted by the next ``migrate``.
    """
    env = config.environment(environment)
    require_confirmation(env, "unlock", confirm)
    engine = engine_for(env)
    try:
        cleared = engine.migration_lock().clear(current_owner(f"unlock {env.name}"))
    finally:
        engine.close()
    return UnlockResult(env.name, cleared)


def _execute(
    config: Config,
    environment: str,
    command: str,
    planner: Planner,
    *,
    dry_run: bool,
    strict: bool,
    confirm: str | None,
    backup: bool | None,
    lock_timeout: float,
    lock_lease: float,
    reporter: Reporter | None,
) -> RunResult:
    env = config.environment(environment)
    if lock_timeout < 0:
        raise UsageError(f"the lock timeout cannot be negative ({lock_timeout:g})")
    if lock_lease < MIN_LEASE:
        raise UsageError(f"the lock lease must be at least {MIN_LEASE:g} s, not {lock_lease:g}")
    if not dry_run:
        # Before connecting or reading anything: a refusal leaves no trace.
        require_confirmation(env, command, confirm)
    report = reporter or LoggingReporter()
    files = discover(config.migrations_dir)
    by_name = {f.name: f for f in files}
    engine = engine_for(env)
    try:
        engine.server_info()  # an unreachable server fails here, within the connect timeout
        store = engine.history()
        # Planned once without the lock, so that a refusal (and a dry run) writes nothing;
        # planned again under the lock, which is what counts.
        records = store.records()
        plan = planner(files, records)
        _check(plan, store, strict, env, by_name)
        if dry_run or not (plan.steps or planning.first_sight(files, records)):
            # Nothing to do needs no lock: a run in progress would show as pending here.
            if not dry_run:
                _warn_drift(plan, report)
            return RunResult(env.name, command, dry_run, tuple(plan.steps), drift=tuple(plan.drift))
        owner = current_owner(f"{command} {env.name}")
        lease = Lease(
            engine.migration_lock(),
            owner,
            environment=env.name,
            lease=lock_lease,
            timeout=lock_timeout,
            reporter=report,
        )
        runners: list[Runner] = []
        with _telling_interrupts(runners), lease:
            # What was read before the wait may be of a database that a restore has replaced
            # since (ending our session, or renaming our file away): read it all afresh.
            engine.disconnect()
            store = engine.history()
            if lease.previous is not None:
                report.message(
                    f"took over the migration lock of {env.name!r} from "
                    f"{lease.previous.describe()}, whose lease expired at "
                    f"{when(lease.previous.expires_at)}",
                    warning=True,
                )
            interrupted = mark_interrupted(store, lease.previous, report)
            for record in planning.first_sight(files, store.records()):
                store.save(record)  # the import of monarch 0.0.x's history, once
            records = store.records()
            plan = planner(files, records)
            _warn_drift(plan, report)
            _check(plan, store, strict, env, by_name)
            made = None
            if plan.steps and (env.backup_before_migrate if backup is None else backup):
                made = _backup(config, env.name, report)
            runner = Runner(
                environment=env.name,
                engine=engine,
                store=store,
                lease=lease,
                reporter=report,
                scrub=_scrubber(env),
                backup=made,
            )
            runners.append(runner)
            outcomes = runner.run(plan.steps, by_name, records)
    finally:
        engine.close()
    result = RunResult(
        env.name,
        command,
        False,
        tuple(plan.steps),
        tuple(outcomes),
        tuple(plan.drift),
        tuple(interrupted),
        made,
    )
    failed = result.failed
    if failed is not None:
        what = "rollback of " if failed.action == ROLLBACK else ""
        skipped = len(plan.steps) - len(outcomes)
        rest = f"; {skipped} later migration(s) were not run" if skipped else ""
        retry = "rollback" if failed.action == ROLLBACK else "migrate"
        path = by_name[failed.name].path
        raise MigrationFailed(
            f"{what}migration {failed.name} failed: {failed.error}{rest}",
            hint=_outside_transaction_hint(failed.error or "", path)
            or missing_mongoengine_hint(failed.error or "")
            or f"fix {path} and run `monarch {retry} {env.name}` again "
            f"(it retries {failed.name}); the full error is in "
            f"`monarch list_migrations {env.name} --json`",
            result=result,
        )
    return result


@contextmanager
def _telling_interrupts(runners: list[Runner]) -> Iterator[None]:
    """Turn an interrupt (Ctrl-C, SIGTERM) into one that says what the run left; by then the
    lock is released and a migration that was running is recorded as interrupted."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if not runners:
            before = "stopped before running any migration; nothing was changed"
            raise Terminated.of(exc, before) from exc
        raise runners[0].interrupted(exc) from exc


def _check(
    plan: planning.Plan,
    store: HistoryStore,
    strict: bool,
    env: Environment,
    files: dict[str, MigrationFile],
) -> None:
    """Refusals that must happen before anything runs."""
    foreign = [files[s.name] for s in plan.steps if not files[s.name].runs_on(env.engine)]
    if foreign:
        engine = ENGINE_NAMES.get(env.engine, env.engine)
        kinds = "; ".join(f"{f.path.name} is {f.cls.kind()}" for f in foreign)
        raise MigrationError(
            f"{kinds}, which cannot run on environment {env.name!r}: it is a {engine} "
            "database; nothing was run",
            hint=f"write it as a {engine} migration (`monarch generate --engine {env.engine} "
            "NAME`), or point this project's migrations at one kind of database",
        )
    planning.check_drift(plan, strict)
    atomic = [s.name for s in plan.steps if s.transactional]
    if atomic and not store.supports_transactions():
        raise TransactionUnsupported(
            f"{', '.join(atomic)} declare(s) transactional = True, but the server of "
            f"environment {env.name!r} has no transactions (FerretDB and standalone servers "
            "have none), and monarch will not run it as if it were atomic; nothing was run",
            hint="run it against a replica set, or make run() safe to repeat and set "
            "transactional = False",
        )


def _warn_drift(plan: planning.Plan, reporter: Reporter) -> None:
    for name in plan.drift:
        reporter.message(f"{name} changed since it was applied", warning=True)


def _backup(config: Config, environment: str, reporter: Reporter) -> str:
    made = backup(config, environment, label="pre-migrate")
    name = str(made.name)
    reporter.message(f"backed up {environment!r} as {name} before running migrations")
    return name


def _scrubber(env: Environment) -> Callable[[str], str]:
    """A function removing the environment's URL and its secrets (raw and encoded) from error
    text, such as the failure a history record keeps."""
    return env.scrub


def _outside_transaction_hint(error: str, path: Path) -> str | None:
    """The way out when a statement refused to run in the migration's transaction (PostgreSQL's
    ``CREATE INDEX CONCURRENTLY``, ``VACUUM``, ...)."""
    # PostgreSQL: "... cannot run inside a transaction block"; SQLite: "cannot VACUUM from
    # within a transaction".
    if "inside a transaction block" not in error and "within a transaction" not in error:
        return None
    how = ("put `-- monarch:transactional=false` on a line at the top of it"
           if path.suffix == ".sql" else "set `transactional = False` on its class")
    return (f"run this migration outside a transaction: {how} ({path}); then run the command "
            "again. Without a transaction a failure midway is not undone, so keep such a "
            "migration to the one statement")
