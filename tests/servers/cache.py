"""The cache of built server binaries, shared by every clone on this machine."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/monarch`` (default ``~/.cache/monarch``), created if missing."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "monarch"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock named ``name`` in the cache, across processes.

    xdist workers and parallel test runs would otherwise build the same binary at once; the
    second one waits here and then finds the first one's result.
    """
    with (cache_dir() / f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
