"""Files beside a SQLite database: monarch's folder ``<db>-monarch/``, OS locks, fsync.

Like SQLite's own ``-wal`` and ``-shm``, monarch keeps its files next to the database: the
migration lock's files and a restore's staging copy (on the same filesystem as the database, so
that renaming it over the database is atomic). Lock files are never deleted while in use:
deleting a file others may be about to lock lets two processes lock two different files.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SIDECAR_SUFFIX = "-monarch"
BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for another connection's lock on the database before failing."""


def sidecar(database: Path) -> Path:
    """monarch's folder beside ``database`` (created if missing)."""
    folder = database.with_name(database.name + SIDECAR_SUFFIX)
    folder.mkdir(exist_ok=True)
    return folder


def try_flock(path: Path, *, create: bool = True, shared: bool = False) -> int | None:
    """Open ``path`` and take a non-blocking ``flock``; the open descriptor, or None if held.

    ``flock`` locks belong to the open file, not the process: two opens in one process exclude
    each other too, and the kernel drops the lock when the holder's process dies.
    """
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
    except FileNotFoundError:
        if create:
            raise
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def unlock(fd: int) -> None:
    """Drop the lock held by descriptor ``fd`` and close it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def mutex(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for a short critical section.

    Never waits for more than ``timeout`` seconds (TimeoutError): a holder that is stopped
    mid-section must not hang everyone else.
    """
    deadline = time.monotonic() + timeout
    while (fd := try_flock(path)) is None:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{path} stayed locked for {timeout:g} s")
        time.sleep(0.002)
    try:
        yield
    finally:
        unlock(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or creation in folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``: readers see the old or the new, whole."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    temp.write_bytes(data)
    os.replace(temp, path)
