"""Insertion threads: raw batches go to the server while the next ones are read.

The queue is bounded, so memory stays at a few batches whatever the dump's size. A failed insert
stops everything: the first error is raised to the caller at its next ``submit`` or ``finish``.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any

from monarch.engines.mongo.errors import first_line, translated
from monarch.engines.mongo.raw_batches import insert_raw
from monarch.errors import BackupError

if TYPE_CHECKING:
    from pymongo.database import Database

    from monarch.config import Environment
    from monarch.io import Buffer
    from monarch.progress import Progress

_Item = tuple[str, str, list["Buffer"], int] | None
_POLL = 0.1


class Inserter:
    """``workers`` threads inserting batches, unordered, telling ``progress`` as they land.

    ``progress.finish_item(name)`` comes once :meth:`end` was called for ``name`` and all its
    batches are acknowledged.
    """

    def __init__(
        self, db: Database[Any], environment: Environment, workers: int, progress: Progress
    ) -> None:
        self._db = db
        self._environment = environment
        self._progress = progress
        self._outstanding: dict[str, int] = {}
        self._ended: set[str] = set()
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=2 * workers)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"monarch-insert-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, name: str, staging: str, runs: list[Buffer], size: int) -> None:
        """Queue a batch for ``staging`` (runs of whole BSON documents, ``size`` bytes in all),
        counted under ``name``; blocks while the queue is full."""
        with self._lock:
            self._outstanding[name] = self._outstanding.get(name, 0) + 1
        self._put((name, staging, runs, size))

    def end(self, name: str) -> None:
        """No more batches will come for ``name``."""
        with self._lock:
            self._ended.add(name)
            done = not self._outstanding.get(name)
        if done:
            self._progress.finish_item(name)

    def finish(self) -> dict[str, int]:
        """Wait for every batch; return the acknowledged documents per name."""
        for _ in self._threads:
            self._put(None)
        for thread in self._threads:
            thread.join()
        self._raise_if_failed()
        return dict(self._counts)

    def abort(self) -> None:
        """Stop: drop queued batches and wait for the inserts in flight to return."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join()

    def _put(self, item: _Item) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._stop.is_set():
                continue
            name, staging, runs, size = item
            try:
                inserted = self._insert(staging, runs, size)
            except BaseException as exc:
                with self._lock:
                    if self._error is None:
                        self._error = exc
                self._stop.set()
                continue
            with self._lock:
                self._counts[name] = self._counts.get(name, 0) + inserted
                self._outstanding[name] -= 1
                done = name in self._ended and not self._outstanding[name]
            self._progress.advance(name, inserted, size)
            if done:
                self._progress.finish_item(name)

    def _insert(self, staging: str, runs: list[Buffer], size: int) -> int:
        from pymongo.errors import BulkWriteError

        with translated(self._environment, "inserting into a staging collection"):
            try:
                return insert_raw(self._db[staging], runs, size)
            except BulkWriteError as exc:
                raise _write_error(staging, dict(exc.details)) from None


def _write_error(staging: str, details: dict[str, Any]) -> BackupError:
    # The server's error quotes the document; keep only its code and message (no data leaks).
    errors = details.get("writeErrors") or []
    first = errors[0] if errors else details.get("writeConcernErrors", [{}])[0]
    code = first.get("code", "?")
    message = first_line(str(first.get("errmsg", "write error")))
    hint = None
    if code == 11000:
        hint = "the dump holds the same _id twice in a collection: it is not a consistent dump"
    return BackupError(
        f"the server refused {len(errors) or 1} document(s) of a batch for staging collection "
        f"{staging!r} (code {code}: {message}); the target is unchanged",
        hint=hint,
    )
