"""Restoring a SQLite database (and drop_db): a staged file renamed over the database.

The new file is staged in ``<db>-monarch/`` (same filesystem as the database), checked (header,
``PRAGMA integrity_check``) and fsynced; then, after the caller's ``before_swap``, it replaces
the database by ``os.replace``, and the folder is fsynced. The rename is atomic: a restore that
fails or is killed leaves the old file, one that finishes leaves the new one, never a mix.

Before the rename monarch must have the database to itself, because SQLite keeps state beside
the file that belongs to the old contents: a ``-wal`` file would be replayed onto the new file,
corrupting it. So it switches the old database out of WAL mode (which checkpoints, removes
``-wal`` and ``-shm``, and fails while any other connection has the file open: the restore is
then refused) and holds an exclusive lock across the rename. Connections opened earlier in
rollback-journal mode cannot be detected: they keep reading the old, unlinked file and their
writes fail; applications must reopen the database after a restore.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from monarch.engines.base import CollectionRestored, Dropped, RestoreStats
from monarch.engines.selection import WHOLE, Selection
from monarch.engines.sqlite import partial
from monarch.engines.sqlite.dump import CHUNK, HEADER, list_tables
from monarch.engines.sqlite.errors import check_file, translated, where
from monarch.engines.sqlite.files import (
    BUSY_TIMEOUT,
    fsync_dir,
    fsync_file,
    sidecar,
    try_flock,
    unlock,
)
from monarch.errors import BackupError, RestoreBusy
from monarch.progress import Item, NullProgress

if TYPE_CHECKING:
    from collections.abc import Callable

    from monarch.config import Environment
    from monarch.engines.sqlite import SQLiteEngine
    from monarch.io import Readable
    from monarch.progress import Progress

WAL_CLOSE_WAIT = 2.0
_STAGING = "restore-"
_SIDE_FILES = ("-wal", "-shm", "-journal")


def restore(
    engine: SQLiteEngine,
    inp: Readable,
    *,
    progress: Progress | None = None,
    before_swap: Callable[[], None] | None = None,
    selection: Selection = WHOLE,
) -> RestoreStats:
    """Replace the database file with the one read from ``inp`` (see the module doc).

    ``progress`` hears ``start("restore", ...)`` with one item, the database, advanced by the
    bytes read, and its ``finish_item`` once the file is in place. A partial ``selection``
    replaces only the tables it selects, in one transaction (see :mod:`.partial`).
    """
    started = time.monotonic()
    env = engine.environment
    target = check_file(env)
    database = env.database
    progress = progress or NullProgress()
    progress.start("restore", [Item(database, None, None, unit="database")])
    engine.disconnect()  # our own connection must not keep the old file open
    folder = sidecar(target)
    with _RestoreLock(env, folder):
        recovered = _remove_leftovers(folder)
        staging = folder / f"{_STAGING}{secrets.token_hex(4)}.sqlite"
        try:
            with staging.open("wb") as file:
                while chunk := inp.read(CHUNK):
                    file.write(chunk)
                    progress.advance(database, 0, len(chunk))
            tables = _verify(env, staging)
            if selection.partial:
                finals = partial.prepare(env, staging, selection)
                selection.refuse_overwrite(finals, partial.present_tables(env, target),
                                           where(env), "table")
                tables = tuple(sorted(finals.values()))
            fsync_file(staging)
            before = list_tables(env, target) if target.exists() else ()
            if before_swap is not None:
                before_swap()
            if selection.partial:
                partial.merge(env, staging, target, list(tables))
                before = tables  # nothing else is dropped
                _remove(staging)
            else:
                _replace(env, staging, target)
        except BaseException:
            _remove(staging)
            raise
    progress.finish_item(database)
    return RestoreStats(
        database=database,
        collections=tuple(CollectionRestored(name, 0, 0, (), "table") for name in tables),
        dropped=tuple(sorted(set(before) - set(tables))),
        recovered=recovered,
        seconds=time.monotonic() - started,
    )


def recover(engine: SQLiteEngine) -> str | None:
    """Remove staging files an interrupted restore left; None if there were none."""
    folder = sidecar(check_file(engine.environment))
    with _RestoreLock(engine.environment, folder):
        return _remove_leftovers(folder)


def drop(engine: SQLiteEngine) -> Dropped:
    """Remove the database file, under the restore lock and with the restore's care."""
    env = engine.environment
    target = check_file(env)
    engine.disconnect()
    if not target.exists():
        return Dropped(str(target), existed=False)
    with _RestoreLock(env, sidecar(target)):
        recovered = _remove_leftovers(sidecar(target))
        tables = list_tables(env, target)
        _replace(env, None, target)
    return Dropped(str(target), True, tables, "removed the database file", recovered)


class _RestoreLock:
    """One restore at a time per database: an ``flock`` on ``restore.lock``."""

    def __init__(self, env: Environment, folder: Path) -> None:
        self._env = env
        self._path = folder / "restore.lock"
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._fd = try_flock(self._path)
        if self._fd is None:
            raise RestoreBusy(
                f"another restore into {where(self._env)} is running; nothing was done",
                hint="wait for it to finish, then run this one again",
            )

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            unlock(self._fd)


def _verify(env: Environment, staging: Path) -> tuple[str, ...]:
    """Check that ``staging`` is a sound SQLite database; its tables."""
    with staging.open("rb") as file:
        header = file.read(len(HEADER))
    if header != HEADER:
        raise BackupError(
            f"the backup for {where(env)} is not a SQLite database (it starts with {header[:16]!r})"
        )
    try:
        conn = sqlite3.connect(staging)
        try:
            problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the backup for {where(env)} is not a usable database: {exc}") from exc
    if problems != ["ok"]:
        shown = "; ".join(problems[:5])
        raise BackupError(f"the backup for {where(env)} fails SQLite's integrity check: {shown}")
    return list_tables(env, staging)


def _replace(env: Environment, staging: Path | None, target: Path) -> None:
    """Rename ``staging`` over ``target`` (None: remove it) while no other connection can use it."""
    if staging is not None and not target.exists():
        os.replace(staging, target)
        fsync_dir(target.parent)
        return
    conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT)
    switched = False
    try:
        with translated(env, "taking the database for the restore"):
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode == "wal":
                # Leaving WAL mode needs every other connection closed: give them a moment.
                conn.execute(f"PRAGMA busy_timeout = {int(WAL_CLOSE_WAIT * 1000)}")
                try:
                    conn.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.OperationalError as exc:
                    raise RestoreBusy(
                        f"{where(env)} is open in other connections (WAL mode), so it cannot be "
                        "replaced safely; nothing was done",
                        hint="stop the applications that use it, then restore again",
                    ) from exc
                switched = True
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute("BEGIN EXCLUSIVE")
        for suffix in _SIDE_FILES:  # state of the old contents; never valid for the new
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        if staging is None:
            target.unlink()  # drop_db: nothing takes the database's place
        else:
            os.replace(staging, target)
        switched = False
        fsync_dir(target.parent)
    except BaseException:
        if switched:  # the old file stays: give it its journal mode back
            with suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute("PRAGMA journal_mode=WAL")
        raise
    finally:
        conn.close()  # its locks are on the old, now unlinked, file


def _remove(path: Path) -> None:
    for suffix in ("", *_SIDE_FILES):
        with suppress(OSError):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _remove_leftovers(folder: Path) -> str | None:
    found = sorted(p for p in folder.glob(f"{_STAGING}*") if p.is_file())
    for path in found:
        path.unlink(missing_ok=True)
    if not found:
        return None
    return f"removed {len(found)} file(s) an interrupted restore left in {folder}"
