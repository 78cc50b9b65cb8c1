"""Plain-text output helpers (no heavy rendering libraries at startup)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from monarch.migrations.progress import StreamReporter

F = TypeVar("F", bound=Callable[..., Any])


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as left-aligned columns under a header line."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


yes_option = click.option(
    "--yes", "-y", is_flag=True, expose_value=False,
    help="Do not ask questions; a protected target still needs its name (typed, or --confirm).",
)
"""``-y/--yes`` on every command that changes a database, with migrate's meaning: no y/N
question is asked; it never stands in for a protected environment's name (see
:mod:`monarch.safety`). Commands that ask no such question accept it all the same, so scripts
can pass it everywhere."""


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON (dates and paths as strings)."""
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def confirm_name(environment_name: str, action: str, confirm: str | None) -> str | None:
    """On a terminal, ask the user to type a protected environment's name.

    Returns what to pass as ``confirm`` to the library (which makes the final decision).
    """
    if confirm is not None or not sys.stdin.isatty():
        return confirm
    click.echo(f"{environment_name!r} is a protected environment.", err=True)
    typed: str = click.prompt(
        f"Type its name to {action}", default="", show_default=False, err=True
    )
    return typed.strip()


def lock_options(func: F) -> F:
    """``--lock-timeout`` and ``--lock-lease``: every command that changes an environment holds
    its lock (migrate's), and waits for it like migrate does."""
    timeout = click.option(
        "--lock-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
        metavar="SECONDS", help="How long to wait for another command's lock (0: do not wait).",
    )
    lease = click.option(
        "--lock-lease", type=click.FloatRange(min=1), default=60.0, show_default=True,
        metavar="SECONDS", help="How long the lock outlives this process if it dies.",
    )
    return timeout(lease(func))


def notices() -> StreamReporter:
    """Where a command's notices go (waiting for the lock, a takeover, a warning): stderr."""
    return StreamReporter(sys.stdout, sys.stderr, tty=sys.stderr.isatty())
