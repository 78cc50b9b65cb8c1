"""The check of a stored dump: ``pg_restore --file=/dev/null`` reads it whole (every block
decoded, nothing restored), touching no database."""

from __future__ import annotations

import logging
import subprocess
from contextlib import suppress
from typing import TYPE_CHECKING

from monarch.engines.base import StreamCheck
from monarch.engines.postgres.tools import CHUNK, Tool, find_tool
from monarch.errors import BackupError

if TYPE_CHECKING:
    from monarch.io import Readable

log = logging.getLogger("monarch.backups")

CHECKED = "pg_restore reading it"
"""What the check is called in verify's report."""


def check(inp: Readable) -> StreamCheck:
    """Read a custom-format dump from ``inp`` through pg_restore; the problems found.

    Reads ``inp`` to its end. Without a pg_restore to run, the check is skipped (with a
    warning): the stream is still read, and no problem is reported.
    """
    try:
        path, _ = find_tool("pg_restore", 0)
    except BackupError as exc:
        log.warning("not checking the dump's structure: %s", exc.message)
        _drain(inp)
        return StreamCheck((), None, CHECKED)
    tool = Tool([str(path), "--file=/dev/null"], {}, stdin=subprocess.PIPE)
    assert tool.process.stdin is not None
    try:
        with suppress(BrokenPipeError):  # pg_restore stopped: its status says why
            while chunk := inp.read(CHUNK):
                tool.process.stdin.write(chunk)
            tool.process.stdin.close()
        status = tool.wait()
    except BaseException:
        tool.kill()
        raise
    _drain(inp)
    if status != 0:
        lines = [line for line in tool.stderr.splitlines() if line.strip()]
        shown = "; ".join(lines[-3:]) or f"status {status}"
        return StreamCheck((f"pg_restore cannot read the dump: {shown}",), None, CHECKED)
    return StreamCheck((), None, CHECKED)


def _drain(inp: Readable) -> None:
    while inp.read(CHUNK):
        pass
