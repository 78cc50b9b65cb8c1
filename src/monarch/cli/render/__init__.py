"""How every command prints its result: one entry point, :func:`show`.

A result (a library value, or one of the small views the command modules build around it when
the text needs what only the command knows) has up to three renderings, each a
:func:`functools.singledispatch` function that the modules of this package register for their
types:

- :func:`text`: the lines a person reads (an element may hold several lines, e.g. a table);
  a :class:`ToStderr` element is a warning and goes to stderr;
- :func:`brief`: the lines of ``-q/--quiet`` (by default the same as :func:`text`);
- :func:`data`: the JSON value of ``--json``.

Importing a module of this package registers its renderers, so a command imports ``show``
from the module for its results (``monarch.cli.render.backups``, ``.migrations``,
``.project``). Those modules import the library's result types, and with them its heavier
parts; this module imports none, so the CLI still starts without them.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any

import click

from monarch.cli.output import echo_json


class ToStderr(str):
    """A line of :func:`text` that is a warning: :func:`show` prints it to stderr."""

    __slots__ = ()


@singledispatch
def text(result: object) -> list[str]:
    """The lines of ``result`` as a person reads them."""
    raise TypeError(f"no text rendering for {type(result).__name__}")


@singledispatch
def brief(result: object) -> list[str]:
    """The lines of ``result`` under ``--quiet``: the essential answer, or nothing."""
    return text(result)


@singledispatch
def data(result: object) -> Any:
    """The JSON value of ``result`` (dates and paths may stay objects: printed as strings)."""
    raise TypeError(f"no JSON rendering for {type(result).__name__}")


def show(result: object, *, as_json: bool = False, quiet: bool = False) -> None:
    """Print ``result``: its JSON value with ``as_json``, else its quiet or full text lines."""
    if as_json:
        echo_json(data(result))
        return
    for line in brief(result) if quiet else text(result):
        click.echo(line, err=isinstance(line, ToStderr))


__all__ = ["ToStderr", "brief", "data", "show", "text"]
