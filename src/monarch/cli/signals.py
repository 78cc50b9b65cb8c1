"""SIGINT, SIGTERM and SIGHUP stop a command cleanly, and its exit code names the signal.

systemd, Kubernetes and CI runners stop a process with SIGTERM; a closed terminal sends SIGHUP.
The ``monarch`` command handles both as Python handles Ctrl-C: the handler raises
:class:`~monarch.errors.Terminated` (a ``KeyboardInterrupt``) in the main thread, which is where
Python runs signal handlers, so the cleanup each operation already does for Ctrl-C runs:
temporary files and staging data are removed, child processes (pg_dump, pg_restore) are ended,
worker threads are stopped by the main thread's cleanup, the migration lock is released and a
running migration is recorded as interrupted. The command then exits with 128 + the signal's
number: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP).

Once stopping, further signals are ignored (with a note), so that a second Ctrl-C or a repeated
SIGTERM cannot cut the cleanup short; SIGKILL still stops at once, and ``monarch recover``
cleans up after it. A signal the parent process set to be ignored (``nohup``) stays ignored.
Only the command installs handlers: a program using monarch as a library keeps its own.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType

import click

from monarch.errors import Terminated

HANDLED: dict[int, str] = {
    signal.SIGINT: "SIGINT",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


class _Handler:
    """Raises Terminated for the first signal; afterwards only notes that it is stopping."""

    def __init__(self) -> None:
        self.stopping = False
        self.finished = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.finished:
            return  # the command's work and output are done; it is exiting anyway
        if self.stopping:
            # Plain writes: the handler may run while the main thread is inside click.echo.
            sys.stderr.write(
                f"monarch: already stopping after a signal; cleaning up (a {HANDLED[signum]} "
                "cannot cut that short; SIGKILL can, then `monarch recover ENV` cleans up)\n"
            )
            sys.stderr.flush()
            return
        self.stopping = True
        raise Terminated(signum)


_handler = _Handler()


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only)."""
    for signum in HANDLED:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue
        signal.signal(signum, _handler)


def finish() -> None:
    """The command is done: signals from now on do not change its exit code."""
    _handler.finished = True


def report(exc: BaseException, clean: Callable[[str], str]) -> int:
    """Print what an interrupt left (``clean`` scrubs secrets); return the exit code."""
    signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    name = HANDLED.get(signum, f"signal {signum}")
    if isinstance(exc, Terminated) and exc.message:
        click.echo(f"Interrupted by {name}: {clean(exc.message)}", err=True)
        if exc.hint:
            click.echo(f"Try: {clean(exc.hint)}", err=True)
    else:
        click.echo(
            f"Interrupted by {name}: stopped, after cleaning up what it had begun.", err=True
        )
    return 128 + int(signum)


def interrupt_of(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt behind click's ``Abort`` (click turns Ctrl-C into one), if any."""
    cause = exc.__cause__ or exc.__context__
    return cause if isinstance(cause, KeyboardInterrupt) else None
