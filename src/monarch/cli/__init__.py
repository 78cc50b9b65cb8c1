"""The ``monarch`` command: a thin skin over the library.

Each command parses its arguments, calls one public library function and prints the result. A
:class:`~monarch.errors.MonarchError` becomes ``Error: ...`` / ``Try: ...`` and its exit code, here
and nowhere else. Heavy imports happen inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import traceback as tb
from collections.abc import Sequence

import click

from monarch._version import __version__
from monarch.cli import backups, history, maintenance, migrations, project, signals
from monarch.cli.session import Session, redacting
from monarch.errors import MonarchError

# Names users of the original tool type, and dashed spellings, map to one command.
ALIASES = {"create": "generate", "status": "list_migrations"}


class MonarchGroup(click.Group):
    """A group that accepts aliases and ``list-migrations`` for ``list_migrations``."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = cmd_name.replace("-", "_")
        return super().get_command(ctx, ALIASES.get(name, name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest


@click.group(cls=MonarchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="monarch", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="monarch.toml to use (default: $MONARCH_CONFIG, else search upward from here).",
)
@click.option("--traceback", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, traceback: bool) -> None:
    """Migrate, back up, restore and copy databases between named environments."""
    ctx.obj = Session(config_path=config_path, traceback=traceback)


def _register() -> None:
    for module in (project, migrations, history, backups, maintenance):
        for command in module.COMMANDS:
            # The original tool's spelling (list_migrations) is canonical; dashes work too.
            command.name = (command.name or "").replace("-", "_")
            cli.add_command(command)


_register()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``monarch`` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    session: Session | None = None
    try:
        result = cli.main(args=args, prog_name="monarch", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except MonarchError as exc:
        session = Session.current
        if (session is not None and session.traceback) or "--traceback" in args:
            _print_traceback(exc, session)
        _print_error(exc.message, exc.hint, session)
        code = exc.exit_code
    except click.exceptions.Abort as exc:
        interrupt = signals.interrupt_of(exc)
        if interrupt is not None:
            code = signals.report(interrupt, redacting(Session.current))
        else:
            click.echo("Aborted; nothing was changed.", err=True)
            code = 1
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = 2
    except KeyboardInterrupt as exc:
        code = signals.report(exc, redacting(Session.current))
    except Exception as exc:
        session = Session.current
        if (session is not None and session.traceback) or "--traceback" in args:
            _print_traceback(exc, session)
        _print_error(
            f"unexpected {type(exc).__name__}: {exc}",
            "rerun with --traceback and report the output (check it for private data first)",
            session,
        )
        code = 1
    sys.exit(code)


MALLOC_ARENAS = 2
"""glibc gives each thread that allocates under contention an arena of its own, and keeps what
is freed there: with a dump's readers and a restore's inserters each passing megabyte buffers,
copy_db's peak memory was 20-25 MB higher with the default (up to 8 per CPU) than with 2, at
the same speed (docs/backups.md)."""
_M_ARENA_MAX = -8


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at :data:`MALLOC_ARENAS` (before any thread starts); elsewhere
    (another C library, no ``mallopt``) nothing is done."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def run() -> None:
    """Console entry point: :func:`main` with signals handled (see :mod:`.signals`), then exit
    at once.

    All work is finished by then; what is left are idle driver threads (pymongo's monitors
    sleep in half-second steps and are joined at interpreter exit), which would add up to a
    second to every command.
    """
    limit_malloc_arenas()
    signals.install()
    try:
        main()
        code: int = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            click.echo(exc.code, err=True)
            code = 1
    except KeyboardInterrupt as exc:  # a signal while main() was printing its last words
        code = signals.report(exc, redacting(Session.current))
    signals.finish()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def _print_traceback(exc: BaseException, session: Session | None) -> None:
    """The traceback (every chained exception too), with every secret scrubbed from it."""
    click.echo(redacting(session)("".join(tb.format_exception(exc))).rstrip("\n"), err=True)


def _print_error(message: str, hint: str | None, session: Session | None) -> None:
    clean = redacting(session)
    click.echo(f"Error: {clean(message)}", err=True)
    if hint:
        click.echo(f"Try: {clean(hint)}", err=True)
