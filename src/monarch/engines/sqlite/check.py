"""The check of a stored SQLite database: written to a temporary file, then SQLite's integrity
check on that copy (the database the environment names is never touched)."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from monarch.engines.base import StreamCheck
from monarch.engines.sqlite.dump import CHUNK, HEADER

if TYPE_CHECKING:
    from monarch.io import Readable

CHECKED = "SQLite's integrity check"
"""What the check is called in verify's report."""


def check(inp: Readable) -> StreamCheck:
    """Write the database read from ``inp`` to a temporary file and run SQLite's integrity
    check on it; the problems found. Reads ``inp`` to its end."""
    return StreamCheck(tuple(_problems(inp)), None, CHECKED)


def _problems(inp: Readable) -> list[str]:
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
