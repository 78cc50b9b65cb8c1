"""Renderings of ``init`` and ``list_environments``. This module imports no database code, so
these commands stay as quick as the CLI's start."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monarch.cli.output import table
from monarch.cli.render import data, show, text
from monarch.config import Environment
from monarch.project import InitResult

__all__ = ["Environments", "show"]


@dataclass(frozen=True)
class Environments:
    """The configured environments, in the order of the config file."""

    environments: Sequence[Environment]


@text.register
def _init_text(result: InitResult) -> list[str]:
    return [*(f"created {path}" for path in result.created), "\nNext:",
            *(f"  {step}" for step in result.next_steps)]


@text.register
def _environments_text(listing: Environments) -> list[str]:
    envs = listing.environments
    if not envs:
        return ["No environments configured; add one under [environments] in monarch.toml."]
    rows = [
        (e.name, e.engine or "?", e.host or "-", e.database or "-",
         f"yes ({e.protected_reason})" if e.protected else "no")
        for e in envs
    ]
    lines = [table(("NAME", "ENGINE", "HOST", "DATABASE", "PROTECTED"), rows)]
    for e in envs:
        if e.missing:
            names = ", ".join(f"${{{name}}}" for name in e.missing)
            lines.append(f"Note: {e.name} needs {names}, which is not set here; commands on it "
                         "stop")
    return lines


@data.register
def _environments_data(listing: Environments) -> list[dict[str, Any]]:
    return [
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
        for e in listing.environments
    ]
