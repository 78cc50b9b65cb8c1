"""Telling the caller what a migration run is doing, while it runs.

The runner calls a :class:`Reporter`. The library's default logs plain lines to the
``monarch.migrations`` logger; the CLI uses :class:`StreamReporter`, which prints one line per
migration and, on a terminal, a live progress line with counts, rate and ETA.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from monarch.migrations.results import Outcome, Step

log = logging.getLogger("monarch.migrations")

# Plain progress lines (logs, CI) come at most this often; a terminal line is redrawn faster.
PLAIN_EVERY = 10.0
TERMINAL_EVERY = 0.1


@dataclass(frozen=True)
class LoopProgress:
    """How far one loop of a migration is: ``done`` of ``total`` items (total may be unknown).

    ``start_done`` is where this run started (a resumed run starts past 0); rate and ETA are
    computed from this run's own work.
    """

    migration: str
    label: str
    done: int
    total: int | None
    start_done: int
    elapsed: float

    @property
    def rate(self) -> float | None:
        """Items per second in this run."""
        worked = self.done - self.start_done
        return worked / self.elapsed if self.elapsed > 0 and worked > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left, if the total and a rate are known."""
        if self.total is None or self.rate is None:
            return None
        return max(self.total - self.done, 0) / self.rate

    def describe(self) -> str:
        text = f"{self.label}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} ({100 * self.done // self.total}%)"
        if self.rate is not None:
            text += f", {self.rate:,.0f}/s"
        if self.eta is not None:
            minutes, secs = divmod(int(self.eta), 60)
            text += f", ETA {minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        return text


class Notices(Protocol):
    """Receives notices: waiting for the lock, a takeover, drift, a backup made, a history
    entry that could not be written. All that commands other than runs report."""

    def message(self, text: str, *, warning: bool = False) -> None:
        """A notice: waiting for the lock, a takeover, drift, a backup made."""
        ...


class Reporter(Notices, Protocol):
    """Receives a run's events as they happen."""

    def started(self, step: Step) -> None: ...

    def progress(self, progress: LoopProgress) -> None: ...

    def finished(self, outcome: Outcome) -> None: ...


class LoggingReporter:
    """The library's default: plain log lines, progress at most every ten seconds."""

    def __init__(self) -> None:
        self._last = 0.0

    def message(self, text: str, *, warning: bool = False) -> None:
        log.log(logging.WARNING if warning else logging.INFO, text)

    def started(self, step: Step) -> None:
        log.info("%s ...", step.describe())

    def progress(self, progress: LoopProgress) -> None:
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY:
            self._last = now
            log.info("  %s", progress.describe())

    def finished(self, outcome: Outcome) -> None:
        log.log(logging.INFO if outcome.ok else logging.ERROR, outcome.describe())


class StreamReporter:
    """Outcome lines to ``out``; notices and progress to ``err`` (redrawn in place on a tty)."""

    def __init__(self, out: TextIO, err: TextIO, *, tty: bool) -> None:
        self.out = out
        self.err = err
        self.tty = tty
        self._last = 0.0
        self._drawn = 0  # width of the live line on the terminal, to erase it

    def message(self, text: str, *, warning: bool = False) -> None:
        self._erase()
        print(("Warning: " if warning else "") + text, file=self.err, flush=True)

    def started(self, step: Step) -> None:
        if self.tty:
            self._draw(f"{step.describe()} ...")

    def progress(self, progress: LoopProgress) -> None:
        now = time.monotonic()
        if now - self._last < (TERMINAL_EVERY if self.tty else PLAIN_EVERY):
            return
        self._last = now
        if self.tty:
            self._draw(f"  {progress.migration}: {progress.describe()}")
        else:
            print(f"  {progress.migration}: {progress.describe()}", file=self.err, flush=True)

    def finished(self, outcome: Outcome) -> None:
        self._erase()
        print(outcome.describe(), file=self.out, flush=True)

    def _draw(self, line: str) -> None:
        line = line[:119]
        self.err.write("\r" + line.ljust(self._drawn))
        self.err.flush()
        self._drawn = len(line)

    def _erase(self) -> None:
        if self._drawn:
            self.err.write("\r" + " " * self._drawn + "\r")
            self.err.flush()
            self._drawn = 0
