"""Helpers for the tests that drive an engine's dump and restore directly.

``Counter`` is a progress listener that remembers what an engine told it; ``copy_through_pipe``
is copy_db as the backups layer makes it of any two engines: the source's ``dump`` (in a thread)
writing into an OS pipe, the target's ``restore`` reading from it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from monarch.engines.base import DumpStats, Engine, RestoreStats
from monarch.progress import Item, Summary


class Counter:
    """A progress listener that remembers what it heard: the starts, the bytes each item
    advanced by, the items finished, and whether ``finish`` was called (engines never do)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, list[Item]]] = []
        self.bytes: dict[str, int] = {}
        self.documents: dict[str, int] = {}
        self.finished_items: list[str] = []
        self.finished = False

    def start(self, action: str, items: Sequence[Item]) -> None:
        self.started.append((action, list(items)))

    def advance(self, item: str, documents: int, size: int) -> None:
        self.bytes[item] = self.bytes.get(item, 0) + size
        self.documents[item] = self.documents.get(item, 0) + documents

    def finish_item(self, item: str) -> None:
        self.finished_items.append(item)

    def finish(self, summary: Summary | None) -> None:
        self.finished = True


def copy_through_pipe(source: Engine, target: Engine, **options: Any) -> RestoreStats:
    """``source.dump`` into ``target.restore`` through an OS pipe; the restore's result.

    A dump that fails makes the restore read a truncated stream (and fail); the dump's own
    error is raised then, as it is the cause. ``options`` go to the restore.
    """
    read_fd, write_fd = os.pipe()
    outcome: dict[str, DumpStats | BaseException] = {}

    def produce() -> None:
        with open(write_fd, "wb") as out:
            try:
                outcome["dump"] = source.dump(out)
            except BaseException as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=produce, name="dump-into-pipe")
    thread.start()
    try:
        # Closing the read end once the restore is done (or failed) ends a dump still writing.
        with open(read_fd, "rb") as inp:
            restored = target.restore(inp, **options)
    except BaseException:
        thread.join()
        error = outcome.get("error")
        if isinstance(error, BaseException) and not isinstance(error, BrokenPipeError):
            raise error from None
        raise
    thread.join()
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    return restored
