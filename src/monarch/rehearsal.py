"""Rehearsing migrations on a throwaway copy: what ``monarch rehearse`` does, and its report.

:func:`rehearse_in` runs the rehearsal in a scratch database (:mod:`monarch.backups.scratch`)
that its caller made and fills: it takes the copy's fingerprint, runs the pending migrations as
``migrate`` would (each one's wall time and write accounting kept), and where every one of them
has a rollback, rolls them all back, compares the copy with its fingerprint from before, and
migrates again. The migrate and rollback runs are the command layer's, handed in as
:class:`Runs`: this module decides what to run and judges the outcome; it opens nothing.

The result, :class:`Rehearsal`, is plain data; :func:`markdown` makes the report a team pastes
into a pull request. ``Rehearsal.exit_code``: 0 clean, 1 a migration failed, 4 a rollback did
not restore the data (or failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monarch.engines.base import Fingerprint, differing
from monarch.errors import MigrationFailed
from monarch.history import APPLIED, BOOKKEEPING, ROLLED_BACK, Record
from monarch.migrations.results import RunResult, seconds

if TYPE_CHECKING:
    from monarch.accounting import Accounting
    from monarch.backups.scratch import Scratch
    from monarch.migrations.discovery import MigrationFile

CLEAN = 0
MIGRATION_FAILED = 1
ROLLBACK_DIFFERS = 4

# What became of the rollback check (Rehearsal.rollback).
RESTORED = "restored"
DIFFERS = "differs"
ROLLBACK_FAILED = "failed"
NO_ROLLBACK = "skipped"  # a migration has no rollback
NOT_RUN = "not run"  # nothing to roll back, or a migration failed


@dataclass(frozen=True)
class Runs:
    """The command layer's runs, aimed at the scratch database.

    ``plan`` is a dry run of ``migrate`` (what would run); ``migrate`` runs the pending
    migrations and ``rollback(n)`` rolls back the last ``n`` applied, each returning the
    :class:`~monarch.migrations.results.RunResult` or raising
    :class:`~monarch.errors.MigrationFailed` (whose ``result`` is what ran); ``records`` reads
    the copy's history records (where each run's write accounting is kept).
    """

    plan: Callable[[], RunResult]
    migrate: Callable[[], RunResult]
    rollback: Callable[[int], RunResult]
    records: Callable[[], dict[str, Record]]


@dataclass(frozen=True)
class Step:
    """One migration in a rehearsal: each of its runs (``None``: not run)."""

    name: str
    migrated: Run | None = None
    rolled_back: Run | None = None
    again: Run | None = None


@dataclass(frozen=True)
class Run:
    """One run of one migration: its wall time, result and what it wrote."""

    state: str
    seconds: float
    error: str | None = None
    accounting: Accounting | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.state in (APPLIED, ROLLED_BACK)


@dataclass(frozen=True)
class Rehearsal:
    """What a rehearsal found (see the module doc).

    ``source``: what the copy was made from (``environment production``, ``backup NAME``,
    ``... through query set NAME``); ``copied``: the copy's documents (rows) per collection
    (table), monarch's own left out. ``server``: the environment whose server held the scratch
    database ``scratch`` (``kept``: it is still there). ``rollback`` is one of ``restored``,
    ``differs``, ``failed``, ``skipped`` (``without_rollback`` names the migrations that have
    none) or ``not run``; ``differing`` names the collections (tables) the rollback did not
    restore, and ``counts`` their documents (rows) before and after (None: absent).
    ``again``: whether migrating again after the rollback went cleanly (None: not tried).
    ``removed``: leftovers of killed rehearsals removed first.
    """

    environment: str
    source: str
    server: str
    scratch: str
    kept: bool
    copy_seconds: float
    copied: dict[str, int]
    steps: tuple[Step, ...]
    rollback: str
    differing: tuple[str, ...] = ()
    counts: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    without_rollback: tuple[str, ...] = ()
    rollback_error: str | None = None
    again: bool | None = None
    removed: tuple[str, ...] = ()
    seconds: float = 0.0
    noun: str = "collection"
    unit: str = "document"

    @property
    def failed(self) -> Step | None:
        """The first migration whose run (first, or again after the rollback) failed."""
        return next((s for s in self.steps for run in (s.migrated, s.again)
                     if run is not None and not run.ok), None)

    @property
    def exit_code(self) -> int:
        """0 clean; 1 a migration failed; 4 a rollback did not restore the data, or failed."""
        if self.rollback in (DIFFERS, ROLLBACK_FAILED):
            return ROLLBACK_DIFFERS
        if self.failed is not None:
            return MIGRATION_FAILED
        return CLEAN

    @property
    def verdict(self) -> str:
        """One sentence: the outcome."""
        failed = self.failed
        if self.rollback == DIFFERS:
            return (f"the rollback did not restore the data: {', '.join(self.differing)} "
                    "differ(s) from before the migrations")
        if self.rollback == ROLLBACK_FAILED:
            return f"the rollback failed: {self.rollback_error}"
        if failed is not None:
            run = failed.migrated if failed.migrated and not failed.migrated.ok else failed.again
            when = "" if run is failed.migrated else " when migrating again after the rollback"
            return f"migration {failed.name} failed{when}: {run.error if run else ''}"
        if not self.steps:
            return "nothing to rehearse: no migration is pending"
        if self.rollback == RESTORED:
            return (f"{len(self.steps)} migration(s) ran, rolled back to exactly the data "
                    "before, and ran again cleanly")
        if self.rollback == NO_ROLLBACK:
            return (f"{len(self.steps)} migration(s) ran cleanly; the rollback was not "
                    f"rehearsed: {', '.join(self.without_rollback)} has (have) no rollback")
        return f"{len(self.steps)} migration(s) ran cleanly"


@dataclass
class _Runs:
    """The outcome of one migrate or rollback run: per migration, and whether it failed."""

    result: RunResult
    failed: bool
    runs: dict[str, Run] = field(default_factory=dict)


def rehearse_in(
    scratch: Scratch,
    runs: Runs,
    files: list[MigrationFile],
    *,
    environment: str,
    server: str,
    fill: Callable[[], str],
    removed: tuple[str, ...] = (),
    noun: str = "collection",
    unit: str = "document",
) -> Rehearsal:
    """Fill ``scratch`` (``fill``, which says from what), then rehearse the pending migrations
    there with ``runs`` (see the module doc); the rest of the arguments describe the rehearsal
    in its result.
    Raises what ``fill`` raises, and a :class:`~monarch.errors.MonarchError` other than a
    failed migration; a failed migration is an answer (``exit_code`` 1), as is a rollback that
    does not restore the data (4)."""
    started = time.monotonic()
    source = fill()
    copy_seconds = time.monotonic() - started
    copied = {name: count for name, count in scratch.engine.inventory().items()
              if name.rpartition(".")[2] not in BOOKKEEPING}
    planned = [step.name for step in runs.plan().planned]
    by_name = {f.name: f for f in files}
    without = tuple(n for n in planned if not by_name[n].cls.has_rollback())
    before = scratch.engine.fingerprint() if planned and not without else None
    first = _run(runs.migrate, runs.records)
    rollback, error, again = NOT_RUN, None, None
    different: tuple[str, ...] = ()
    counts: dict[str, tuple[int | None, int | None]] = {}
    rolled = _Runs(first.result, False)
    second = _Runs(first.result, False)
    if first.failed or not planned:
        pass
    elif without:
        rollback = NO_ROLLBACK
    else:
        rolled = _run(lambda: runs.rollback(len(planned)), runs.records)
        if rolled.failed:
            rollback = ROLLBACK_FAILED
            error = next((r.error for r in rolled.runs.values() if not r.ok), None)
        else:
            after = scratch.engine.fingerprint()
            different = tuple(differing(before or {}, after))
            counts = {name: (_count(before, name), _count(after, name)) for name in different}
            rollback = DIFFERS if different else RESTORED
            second = _run(runs.migrate, runs.records)
            again = not second.failed
    steps = tuple(Step(name, first.runs.get(name), rolled.runs.get(name), second.runs.get(name))
                  for name in planned)
    return Rehearsal(
        environment=environment, source=source, server=server, scratch=scratch.name,
        kept=scratch.kept, copy_seconds=copy_seconds, copied=copied, steps=steps,
        rollback=rollback, differing=different, counts=counts, without_rollback=without,
        rollback_error=error, again=again, removed=removed,
        seconds=time.monotonic() - started, noun=noun, unit=unit,
    )


def _count(fingerprints: dict[str, Fingerprint] | None, name: str) -> int | None:
    found = (fingerprints or {}).get(name)
    return found.count if found is not None else None


def _run(command: Callable[[], RunResult], records: Callable[[], dict[str, Record]]) -> _Runs:
    """Run ``command``; each migration's outcome with what its history record says it wrote."""
    try:
        result, failed = command(), False
    except MigrationFailed as exc:
        if not isinstance(exc.result, RunResult):
            raise
        result, failed = exc.result, True
    written = records()
    outcome = _Runs(result, failed)
    for o in result.outcomes:
        record = written.get(o.name)
        outcome.runs[o.name] = Run(o.state, o.duration, o.error,
                                   record.accounting if record is not None else None)
    return outcome


# The Markdown report ------------------------------------------------------------------------


def markdown(result: Rehearsal) -> str:
    """The rehearsal as a Markdown report, for a pull request: verdict, table, details."""
    mark = {CLEAN: "✅", MIGRATION_FAILED: "❌", ROLLBACK_DIFFERS: "⚠️"}[result.exit_code]
    lines = [
        f"## Migration rehearsal: {result.environment}",
        "",
        f"{mark} **{result.verdict[0].upper()}{result.verdict[1:]}.**",
        "",
        f"- Copy: {result.source}, {sum(result.copied.values()):,} {result.unit}(s) in "
        f"{len(result.copied)} {result.noun}(s), made in {seconds(result.copy_seconds)}",
        f"- Scratch database: `{result.scratch}` on the server of `{result.server}` "
        f"({'kept' if result.kept else 'removed afterwards'})",
        f"- Rollback check: {_rollback_words(result)}",
        f"- Total time: {seconds(result.seconds)}",
        "",
    ]
    if result.steps:
        lines += ["| Migration | Time | Writes | Result | Rollback | Again |",
                  "|---|---:|---|---|---|---|"]
        for step in result.steps:
            run = step.migrated
            writes = "<br>".join(_escape(w) for w in written(run)) or "—"
            lines.append(f"| `{step.name}` | {seconds(run.seconds) if run else '—'} | {writes} "
                         f"| {_cell(run)} | {_cell(step.rolled_back)} | {_cell(step.again)} |")
        lines.append("")
    if result.differing:
        lines += ["Not restored by the rollback:", ""]
        lines += [f"- {difference(result, name)}" for name in result.differing]
        lines.append("")
    undone = [(step.name, written(step.rolled_back)) for step in result.steps
              if step.rolled_back is not None]
    if undone:
        lines += ["<details><summary>What each rollback wrote</summary>", ""]
        lines += [f"- `{name}`: {'; '.join(lines_) or 'nothing counted'}"
                  for name, lines_ in undone]
        lines += ["", "</details>", ""]
    lines.append("<sub>Generated by `monarch rehearse`: the migrations ran on a throwaway copy; "
                 f"`{result.environment}` was not changed.</sub>")
    return "\n".join(lines) + "\n"


def difference(result: Rehearsal, name: str) -> str:
    """How collection (table) ``name`` differs after the rollback: its counts, or its
    content."""
    before, after = result.counts.get(name, (None, None))
    if before is None:
        return f"{name}: created by the migrations, still there after the rollback"
    if after is None:
        return f"{name}: gone after the rollback"
    if before != after:
        return f"{name}: {before:,} {result.unit}(s) before, {after:,} after the rollback"
    return (f"{name}: {before:,} {result.unit}(s) before and after, but their content (or the "
            f"{result.noun}'s indexes or definition) differs")


def written(run: Run | None) -> list[str]:
    """What a run wrote, one line per collection (table); empty when it wrote nothing or was
    not counted."""
    if run is None or run.accounting is None:
        return []
    return run.accounting.lines()


def _cell(run: Run | None) -> str:
    if run is None:
        return "—"
    if not run.ok:
        return f"failed: {_escape(run.error or run.state)}"
    return f"{run.state.replace('_', ' ')} ({seconds(run.seconds)})"


def _rollback_words(result: Rehearsal) -> str:
    return {
        RESTORED: "every migration rolled back; the data equals the copy before the "
                  "migrations; migrating again went cleanly" if result.again else
                  "every migration rolled back; the data equals the copy before the "
                  "migrations; migrating again failed",
        DIFFERS: f"the data after the rollback differs in {', '.join(result.differing)}",
        ROLLBACK_FAILED: f"the rollback failed: {result.rollback_error}",
        NO_ROLLBACK: f"not rehearsed: {', '.join(result.without_rollback)} has (have) no "
                     "rollback",
        NOT_RUN: "not run",
    }[result.rollback]


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
