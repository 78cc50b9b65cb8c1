"""Rendering of ``rehearse``: its table (one row per migration, a line per collection or table
written), verdict and JSON; ``--report`` writes the library's Markdown
(:func:`monarch.rehearsal.markdown`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from monarch.cli.output import table
from monarch.cli.render import ToStderr, data, show, text
from monarch.migrations.results import seconds
from monarch.rehearsal import CLEAN, Rehearsal, Run, difference, markdown, written

__all__ = ["show", "write_report"]


def write_report(result: Rehearsal, path: Path) -> None:
    """``--report FILE.md``: the Markdown report."""
    path.write_text(markdown(result), encoding="utf-8")


@text.register
def _rehearsal_text(result: Rehearsal) -> list[str]:
    copied = sum(result.copied.values())
    lines = [f"Rehearsed on {result.scratch} (server of {result.server}), a copy of "
             f"{result.source}: {copied:,} {result.unit}(s) in {len(result.copied)} "
             f"{result.noun}(s), copied in {seconds(result.copy_seconds)}"]
    if result.removed:
        lines.append(f"Removed what killed rehearsals left: {', '.join(result.removed)}")
    rows: list[tuple[str, ...]] = []
    for step in result.steps:
        writes = written(step.migrated) or ["-"]
        rows.append((step.name, _time(step.migrated), writes[0], _state(step.migrated),
                     _state(step.rolled_back), _state(step.again)))
        rows += [("", "", line, "", "", "") for line in writes[1:]]
    if rows:
        lines += ["", table(("MIGRATION", "TIME", "WRITES", "RESULT", "ROLLBACK", "AGAIN"), rows)]
    errors = [f"{step.name}: {run.error}" for step in result.steps
              for run in (step.migrated, step.rolled_back, step.again)
              if run is not None and run.error]
    lines += [ToStderr(f"Error in {line}") for line in errors]
    lines += [ToStderr(f"Not restored: {difference(result, name)}") for name in result.differing]
    if result.kept:
        lines.append(f"\nKept the scratch database {result.scratch}: remove it yourself when "
                     "done (monarch never removes a kept one).")
    verdict = f"\n{result.verdict[0].upper()}{result.verdict[1:]}."
    lines.append(verdict if result.exit_code == CLEAN else ToStderr(verdict))
    return lines


@data.register
def _rehearsal_data(result: Rehearsal) -> dict[str, Any]:
    value = asdict(result)
    value["steps"] = [{"name": step.name, "migrate": _run_data(step.migrated),
                       "rollback": _run_data(step.rolled_back), "again": _run_data(step.again)}
                      for step in result.steps]
    value["verdict"] = result.verdict
    value["exit_code"] = result.exit_code
    return value


def _run_data(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    accounting = run.accounting.to_json() if run.accounting is not None else None
    return {"state": run.state, "seconds": run.seconds, "error": run.error,
            "accounting": accounting}


def _time(run: Run | None) -> str:
    return seconds(run.seconds) if run is not None else "-"


def _state(run: Run | None) -> str:
    if run is None:
        return "-"
    return "FAILED" if not run.ok else run.state.replace("_", " ")
