"""Backups of a SQLite database: SQLite's online backup API out, an atomic rename in.

Dump: ``sqlite3.Connection.backup`` copies the database, in one step, into a temporary file,
which is then streamed out. One step means one read transaction: the copy is a consistent
snapshot however much the application writes meanwhile (in WAL mode writers carry on; in
rollback-journal mode they wait for the copy, a busy timeout's worth at most).

Restore (and copy): the new file is staged in ``<db>-monarch/`` (same filesystem as the
database), checked (header, ``PRAGMA integrity_check``) and fsynced; then it replaces the
database by ``os.replace``, and the folder is fsynced. The rename is atomic: a restore that
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
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from monarch.engines.base import StreamDump, TableStats
from monarch.engines.sqlite.errors import check_file, translated, where
from monarch.engines.sqlite.files import fsync_dir, fsync_file, sidecar, try_flock, unlock
from monarch.errors import BackupError, RestoreBusy
from monarch.io import Readable, Writable

if TYPE_CHECKING:
    from monarch.config import Environment
    from monarch.engines.base import Dropped
    from monarch.engines.sqlite import SQLiteEngine

FORMAT = "sqlite3-database"
CHUNK = 1024 * 1024
HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT = 10.0
WAL_CLOSE_WAIT = 2.0
_STAGING = "restore-"
_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class DumpResult:
    """What :meth:`SQLiteEngine.dump` wrote: ``bytes`` of a SQLite database file."""

    database: str
    format: str
    bytes: int
    seconds: float
    sqlite_version: str
    tables: tuple[str, ...]
    rows: tuple[int, ...] = ()
    """Rows of each table of ``tables`` (views: 0), counted on the copy."""


@dataclass(frozen=True)
class RestoreResult:
    """What a restore or copy did: ``tables`` now in the database, ``dropped`` ones it had and
    the dump did not, ``created`` if there was no file before, ``recovered``: staging files an
    interrupted restore had left, removed. ``bytes`` is None for a copy."""

    database: str
    bytes: int | None
    seconds: float
    tables: tuple[str, ...]
    dropped: tuple[str, ...]
    created: bool
    recovered: str | None


def dump(engine: SQLiteEngine, out: Writable) -> DumpResult:
    """Write a consistent copy of the database file to ``out`` (see the module doc)."""
    started = time.monotonic()
    env = engine.environment
    source = check_file(env, must_exist=True)
    with tempfile.TemporaryDirectory(prefix="monarch-sqlite-") as folder:
        copy = Path(folder) / "dump.sqlite"
        snapshot(env, source, copy)
        tables = _tables(env, copy)
        rows = _row_counts(env, copy)
        size = 0
        with copy.open("rb") as file:
            while chunk := file.read(CHUNK):
                out.write(chunk)
                size += len(chunk)
    return DumpResult(
        database=str(source),
        format=FORMAT,
        bytes=size,
        seconds=time.monotonic() - started,
        sqlite_version=sqlite3.sqlite_version,
        tables=tables,
        rows=tuple(rows.get(name, 0) for name in tables),
    )


def dump_stream(engine: SQLiteEngine, out: Writable) -> StreamDump:
    """:func:`dump` as the backup layer records it (see SQLiteEngine.dump_stream)."""
    server = engine.server_info()
    result = dump(engine, out)
    return StreamDump(
        format=result.format,
        bytes=result.bytes,
        server=server,
        tool_version=f"sqlite3 {result.sqlite_version}",
        tables=tuple(TableStats(t, n) for t, n in zip(result.tables, result.rows, strict=True)),
        seconds=result.seconds,
    )


def check_stream(inp: Readable) -> list[str]:
    """Write the database read from ``inp`` to a temporary file and run SQLite's integrity
    check on it; the problems found. Reads ``inp`` to its end."""
    with tempfile.TemporaryDirectory(prefix="monarch-verify-") as folder:
        path = Path(folder) / "check.sqlite"
        with path.open("wb") as file:
            while chunk := inp.read(CHUNK):
                file.write(chunk)
        with path.open("rb") as file:
            header = file.read(len(HEADER))
        if header != HEADER:
            return [f"not a SQLite database (it starts with {header[:16]!r})"]
        try:
            conn = sqlite3.connect(path)
            try:
                found = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return [f"not a usable SQLite database: {exc}"]
    return [] if found == ["ok"] else [f"integrity check: {p}" for p in found[:5]]


def restore(engine: SQLiteEngine, inp: Readable) -> RestoreResult:
    """Replace the database file with the one read from ``inp`` (see the module doc)."""

    def fill(staging: Path) -> int:
        size = 0
        with staging.open("wb") as file:
            while chunk := inp.read(CHUNK):
                file.write(chunk)
                size += len(chunk)
        return size

    return _restore(engine, fill)


def copy(source: SQLiteEngine, target: object) -> RestoreResult:
    """Make ``target`` an exact copy of ``source``: its backup API writes the staging file."""
    from monarch.engines.sqlite import SQLiteEngine

    if not isinstance(target, SQLiteEngine):
        kind = getattr(target, "name", type(target).__name__)
        raise BackupError(
            f"cannot copy a SQLite database into a {kind} environment",
            hint="copy_db works between environments of the same engine",
        )
    path = check_file(source.environment, must_exist=True)
    if Path(target.environment.database).resolve() == path.resolve():
        raise BackupError(f"cannot copy {where(source.environment)} onto itself")

    def fill(staging: Path) -> None:
        snapshot(source.environment, path, staging)

    return _restore(target, fill)


def recover(engine: SQLiteEngine) -> str | None:
    """Remove staging files an interrupted restore left; None if there were none."""
    folder = sidecar(check_file(engine.environment))
    with _restore_lock(engine.environment, folder):
        return _remove_leftovers(folder)


def drop(engine: SQLiteEngine) -> Dropped:
    """Remove the database file, under the restore lock and with the restore's care."""
    from monarch.engines.base import Dropped

    env = engine.environment
    target = check_file(env)
    engine.disconnect()
    if not target.exists():
        return Dropped(str(target), existed=False)
    with _restore_lock(env, sidecar(target)):
        recovered = _remove_leftovers(sidecar(target))
        tables = _tables(env, target)
        _replace(env, None, target)
    return Dropped(str(target), True, tables, "removed the database file", recovered)


def snapshot(env: Environment, source: Path, dest: Path) -> None:
    """Copy database ``source`` into the new file ``dest`` with SQLite's online backup API."""
    with translated(env, "copying the database"):
        src = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True, timeout=BUSY_TIMEOUT)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)  # all pages in one step: one consistent snapshot
            finally:
                dst.close()
        finally:
            src.close()
    fsync_file(dest)


def _restore(engine: SQLiteEngine, fill: Callable[[Path], int | None]) -> RestoreResult:
    started = time.monotonic()
    env = engine.environment
    target = check_file(env)
    engine.disconnect()  # our own connection must not keep the old file open
    folder = sidecar(target)
    with _restore_lock(env, folder):
        recovered = _remove_leftovers(folder)
        staging = folder / f"{_STAGING}{secrets.token_hex(4)}.sqlite"
        try:
            size = fill(staging)
            tables = _verify(env, staging)
            fsync_file(staging)
            created = not target.exists()
            before = () if created else _tables(env, target)
            _replace(env, staging, target)
        except BaseException:
            _remove(staging)
            raise
    return RestoreResult(
        database=str(target),
        bytes=size,
        seconds=time.monotonic() - started,
        tables=tables,
        dropped=tuple(sorted(set(before) - set(tables))),
        created=created,
        recovered=recovered,
    )


class _restore_lock:
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
    return _tables(env, staging)


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


def _tables(env: Environment, path: Path) -> tuple[str, ...]:
    with translated(env, "listing tables"):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=BUSY_TIMEOUT)
        try:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            ).fetchall()
        finally:
            conn.close()
    return tuple(str(row[0]) for row in rows)


def _row_counts(env: Environment, path: Path) -> dict[str, int]:
    with translated(env, "counting rows"):
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            names = [str(r[0]) for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
            return {
                name: int(conn.execute(
                    'SELECT count(*) FROM "{}"'.format(name.replace('"', '""'))
                ).fetchone()[0])
                for name in names
            }
        finally:
            conn.close()


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
