"""Progress reporting: the small interface the library calls as long operations advance.

The library never prints. Long operations (backup, restore, copy_db, verify) accept a
``progress`` object and call it as work advances::

    progress.start("backup", [Item("users", documents=120_000, size=50_000_000), ...])
    progress.advance("users", documents=1000, size=400_000)   # increments, any number of times
    progress.finish_item("users")
    progress.finish(Summary(...))                             # or finish(None) on failure

Calls may come from several threads. :class:`NullProgress` (the library's default) reports
nothing; the renderers the CLI picks live in :mod:`monarch.cli.progress`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from monarch.io import Buffer, Readable, Writable


@dataclass(frozen=True)
class Item:
    """Something a phase will process (a collection), with size estimates when known.

    ``unit`` is what it is: ``"collection"`` (its documents are counted), or ``"database"``
    (a PostgreSQL or SQLite database streamed whole: bytes only).
    """

    name: str
    documents: int | None = None
    size: int | None = None
    unit: str = "collection"


# unit -> (its plural, what it holds, counted); tables hold rows, a streamed database bytes.
_UNITS = {"collection": ("collections", "documents"), "table": ("tables", "rows"),
          "database": ("databases", "")}


def counted(count: int, unit: str) -> str:
    """``"1 collection"``, ``"3 tables"``."""
    return f"{count:,} {unit if count == 1 else _UNITS.get(unit, (unit + 's', ''))[0]}"


def contents(count: int, unit: str) -> str:
    """What ``count`` things inside ``unit`` items are called: ``"1,200 documents"``,
    ``"5 rows"``; empty for a unit whose contents are not counted."""
    noun = _UNITS.get(unit, ("", "documents"))[1]
    return f"{count:,} {noun}" if noun else ""


@dataclass(frozen=True)
class Summary:
    """What an operation did, for the closing line."""

    action: str
    items: int
    documents: int
    size: int
    seconds: float
    unit: str = "collection"
    """What ``items`` counts: ``"collection"`` (holding documents) or ``"table"`` (rows; left
    out when not counted, as on a restore)."""

    @property
    def throughput(self) -> float:
        """Bytes per second over the whole operation."""
        return self.size / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One human line: ``backup: 3 collections, 1,200 documents, 4.1 MB in 2.0 s (...)``."""
        inside = contents(self.documents, self.unit)
        inside = f"{inside}, " if inside and (self.documents or self.unit == "collection") else ""
        return (
            f"{self.action}: {counted(self.items, self.unit)}, {inside}{format_size(self.size)} "
            f"in {format_duration(self.seconds)} ({format_size(self.throughput)}/s)"
        )


class Progress(Protocol):
    """What the library reports to. Every method must be cheap and must not raise."""

    def start(self, action: str, items: Sequence[Item]) -> None: ...

    def advance(self, item: str, documents: int, size: int) -> None: ...

    def finish_item(self, item: str) -> None: ...

    def finish(self, summary: Summary | None) -> None: ...


class NullProgress:
    """Reports nothing (``--quiet``, and the library's default)."""

    def start(self, action: str, items: Sequence[Item]) -> None:
        pass

    def advance(self, item: str, documents: int, size: int) -> None:
        pass

    def finish_item(self, item: str) -> None:
        pass

    def finish(self, summary: Summary | None) -> None:
        pass


class Relabelled:
    """``inner``, hearing every operation reported to it as ``action``: an operation run as a
    step of another (``rehearse`` copying an environment) is named after what the user ran."""

    def __init__(self, inner: Progress, action: str) -> None:
        self._inner = inner
        self._action = action

    def start(self, action: str, items: Sequence[Item]) -> None:
        self._inner.start(self._action, items)

    def advance(self, item: str, documents: int, size: int) -> None:
        self._inner.advance(item, documents, size)

    def finish_item(self, item: str) -> None:
        self._inner.finish_item(item)

    def finish(self, summary: Summary | None) -> None:
        self._inner.finish(None if summary is None else replace(summary, action=self._action))


def format_size(size: float) -> str:
    """``1.5 MB`` style (decimal units, as disk and network speeds are quoted)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - the loop always returns


def format_duration(seconds: float) -> str:
    """``0.4 s``, ``12.3 s``, ``4:05``, ``1:02:03``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class ReportingReader:
    """``inp``, reporting the bytes read through it as progress of ``item`` (a stream whose
    contents are not counted: a PostgreSQL or SQLite database)."""

    def __init__(self, inp: Readable, progress: Progress, item: str) -> None:
        self._inp = inp
        self._progress = progress
        self._item = item

    def read(self, size: int = -1, /) -> bytes:
        data = self._inp.read(size)
        if data:
            self._progress.advance(self._item, 0, len(data))
        return data


class ReportingWriter:
    """``out``, reporting the bytes written through it as progress of ``item``."""

    def __init__(self, out: Writable, progress: Progress, item: str) -> None:
        self._out = out
        self._progress = progress
        self._item = item

    def write(self, data: Buffer, /) -> int:
        self._out.write(data)
        size = memoryview(data).nbytes
        self._progress.advance(self._item, 0, size)
        return size
