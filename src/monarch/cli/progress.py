"""The progress renderers the CLI picks (the interface they implement: :mod:`monarch.progress`).

:class:`TerminalProgress`: per-item bars with documents, MB/s and ETA, redrawn in place on
stderr; :class:`LineProgress`: a plain line every few seconds, for logs and CI;
:class:`~monarch.progress.NullProgress` for ``--quiet``. :func:`progress_for` picks one.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from monarch.progress import (
    Item,
    NullProgress,
    Progress,
    Summary,
    contents,
    counted,
    format_duration,
    format_size,
)


@dataclass
class _State:
    item: Item
    documents: int = 0
    size: int = 0
    started: float | None = None
    done: bool = False


class _Tracker:
    """Counts shared by the renderers; every method is called with the lock held."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.action = ""
        self.items: dict[str, _State] = {}
        self.started = clock()

    def reset(self, action: str, items: Sequence[Item]) -> None:
        self.action = action
        self.items = {i.name: _State(i) for i in items}
        self.started = self.clock()

    def add(self, name: str, documents: int, size: int) -> _State:
        state = self.items.get(name)
        if state is None:
            state = self.items[name] = _State(Item(name))
        if state.started is None:
            state.started = self.clock()
        state.documents += documents
        state.size += size
        return state

    def totals(self) -> tuple[int, int, int | None, int]:
        """(documents, bytes, expected documents or None, items done)."""
        docs = sum(s.documents for s in self.items.values())
        size = sum(s.size for s in self.items.values())
        expected: int | None = 0
        for s in self.items.values():
            if s.item.documents is None or expected is None:
                expected = None
            else:
                expected += max(s.item.documents, s.documents)
        done = sum(1 for s in self.items.values() if s.done)
        return docs, size, expected, done

    def unit(self) -> str:
        """What the items are (all of one kind): ``"collection"`` or ``"database"``."""
        return next((s.item.unit for s in self.items.values()), "collection")


class LineProgress:
    """A plain status line every ``interval`` seconds and one line per finished item."""

    def __init__(
        self, stream: TextIO, interval: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._out = stream
        self._interval = interval
        self._t = _Tracker(clock)
        self._last = 0.0

    def start(self, action: str, items: Sequence[Item]) -> None:
        with self._t.lock:
            self._t.reset(action, items)
            self._last = self._t.started
            known = [i.documents for i in items]
            about = f" (~{sum(d or 0 for d in known):,} documents)" if all(
                d is not None for d in known) else ""
            unit = items[0].unit if items else "collection"
            self._write(f"{action}: {counted(len(items), unit)}{about}")

    def advance(self, item: str, documents: int, size: int) -> None:
        with self._t.lock:
            self._t.add(item, documents, size)
            now = self._t.clock()
            if now - self._last >= self._interval:
                self._last = now
                self._write(self._status(now))

    def finish_item(self, item: str) -> None:
        with self._t.lock:
            state = self._t.add(item, 0, 0)
            state.done = True
            inside = contents(state.documents, state.item.unit)
            self._write(f"  {item}: {inside + ', ' if inside else ''}{format_size(state.size)}")

    def finish(self, summary: Summary | None) -> None:
        with self._t.lock:
            if summary is None and self._t.action:
                self._write(f"{self._t.action}: stopped")

    def _status(self, now: float) -> str:
        docs, size, expected, done = self._t.totals()
        elapsed = now - self._t.started
        rate = size / elapsed if elapsed > 0 else 0.0
        unit = self._t.unit()
        parts = [f"{done}/{counted(len(self._t.items), unit)}"]
        if contents(0, unit):
            parts.append(f"{docs:,}/{expected:,} documents ({min(docs / expected, 1):.0%})"
                         if expected else contents(docs, unit))
        parts += [format_size(size), f"{format_size(rate)}/s"]
        eta = _eta(docs, expected, elapsed)
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        return f"{self._t.action}: " + ", ".join(parts)

    def _write(self, line: str) -> None:
        try:
            self._out.write(line + "\n")
            self._out.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not fail the backup


class TerminalProgress:
    """Per-item bars redrawn in place (at most ``rows`` at a time) plus a total line."""

    BAR = 20

    def __init__(
        self,
        stream: TextIO,
        rows: int = 6,
        refresh: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = stream
        self._rows = rows
        self._refresh = refresh
        self._t = _Tracker(clock)
        self._drawn = 0
        self._last = 0.0

    def start(self, action: str, items: Sequence[Item]) -> None:
        with self._t.lock:
            self._t.reset(action, items)
            self._redraw(force=True)

    def advance(self, item: str, documents: int, size: int) -> None:
        with self._t.lock:
            self._t.add(item, documents, size)
            self._redraw()

    def finish_item(self, item: str) -> None:
        with self._t.lock:
            state = self._t.add(item, 0, 0)
            state.done = True
            took = self._t.clock() - (state.started or self._t.clock())
            # Finished items scroll up above the live region and stay on screen.
            self._clear()
            inside = contents(state.documents, state.item.unit)
            self._emit(f"  done {item}: {inside + ', ' if inside else ''}"
                       f"{format_size(state.size)} in {format_duration(took)}\n")
            self._redraw(force=True)

    def finish(self, summary: Summary | None) -> None:
        with self._t.lock:
            self._clear()

    def _redraw(self, force: bool = False) -> None:
        now = self._t.clock()
        if not force and now - self._last < self._refresh:
            return
        self._last = now
        active = [s for s in self._t.items.values() if s.started is not None and not s.done]
        lines = [self._bar(s, now) for s in active[: self._rows]]
        if len(active) > self._rows:
            lines.append(f"  ... and {len(active) - self._rows} more")
        lines.append(self._total(now))
        self._clear()
        self._emit("".join(f"{line}\x1b[K\n" for line in lines))
        self._drawn = len(lines)

    def _clear(self) -> None:
        if self._drawn:
            self._emit(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _bar(self, state: _State, now: float) -> str:
        elapsed = now - (state.started or now)
        rate = state.size / elapsed if elapsed > 0 else 0.0
        total = state.item.documents
        name = state.item.name[:24].ljust(24)
        if total:
            frac = min(state.documents / total, 1.0)
            fill = int(frac * self.BAR)
            bar = "[" + "#" * fill + "-" * (self.BAR - fill) + f"] {frac:4.0%}"
            count = f"{state.documents:,}/{total:,}"
        else:
            bar, count = " " * (self.BAR + 7), f"{state.documents:,}"
        eta = _eta(state.documents, total, elapsed)
        tail = f"  ETA {format_duration(eta)}" if eta is not None else ""
        if not contents(0, state.item.unit):  # a streamed database: bytes only
            return f"  {name} {format_size(state.size)}  {format_size(rate)}/s{tail}"
        return f"  {name} {bar} {count} docs  {format_size(rate)}/s{tail}"

    def _total(self, now: float) -> str:
        docs, size, expected, done = self._t.totals()
        elapsed = now - self._t.started
        rate = size / elapsed if elapsed > 0 else 0.0
        of = f"/{expected:,}" if expected else ""
        eta = _eta(docs, expected, elapsed)
        tail = f", ETA {format_duration(eta)}" if eta is not None else ""
        unit = self._t.unit()
        inside = f"{docs:,}{of} documents, " if contents(0, unit) else ""
        return (f"{self._t.action}: {done}/{counted(len(self._t.items), unit)}, {inside}"
                f"{format_size(size)}, {format_size(rate)}/s{tail}")

    def _emit(self, text: str) -> None:
        try:
            self._out.write(text)
            self._out.flush()
        except (OSError, ValueError):
            pass


def progress_for(
    stream: TextIO | None = None, *, quiet: bool = False, interval: float = 5.0
) -> Progress:
    """The renderer the CLI uses: none when quiet, bars on a terminal, lines otherwise."""
    if quiet:
        return NullProgress()
    out = stream if stream is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return TerminalProgress(out)
    return LineProgress(out, interval=interval)


def _eta(done: int, total: int | None, elapsed: float) -> float | None:
    if not total or done <= 0 or elapsed < 1.0 or done >= total:
        return None
    return elapsed * (total - done) / done
