"""Finding and running PostgreSQL's client tools (pg_dump, pg_restore).

A tool is taken from ``$MONARCH_PG_BIN`` (a folder) when set, else from PATH. It must be at least
the server's major version: pg_dump refuses to dump a server newer than itself, and
pg_restore cannot read what a newer pg_dump wrote.

A tool runs with its connection settings (password included) in its environment, never in its
argv. Its stderr is collected by a thread (the last 64 KiB) so that it can neither block the
tool nor grow without bound.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO

from monarch.errors import BackupError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
STDERR_KEEP = 64 * 1024
CHUNK = 1024 * 1024


PIPE_SIZE = 1024 * 1024
"""Bytes an OS pipe to or from a tool holds (Linux; the default is 64 KiB). monarch stands
between pg_dump and pg_restore, or between a backup and pg_restore: a pipe that holds a whole
chunk lets the tool on the other side go on while monarch waits for the CPU, as it would
reading a file."""
_PIPE_MAX = Path("/proc/sys/fs/pipe-max-size")


def pipe_size() -> int:
    """:data:`PIPE_SIZE`, or less where the system allows less; -1 (the system's default) where
    pipe sizes cannot be set."""
    try:
        allowed = int(_PIPE_MAX.read_text())
    except (OSError, ValueError):
        return -1
    return min(PIPE_SIZE, allowed)


def major_of(server_version: int) -> int:
    """The major version of a server version number (150004 -> 15, 90624 -> 9)."""
    return server_version // 10000 if server_version >= 100000 else server_version // 100 // 100


def find_tool(name: str, server_version: int) -> tuple[Path, str]:
    """The path and version of tool ``name``, checked against the server's version."""
    server_major = major_of(server_version)
    install = (
        f"install the PostgreSQL {server_major} client tools or newer (Debian/Ubuntu: "
        f"postgresql-client-{server_major}; macOS: brew install postgresql@{server_major}), "
        "then put them on PATH or set MONARCH_PG_BIN to their folder"
    )
    folder = os.environ.get("MONARCH_PG_BIN")
    if folder:
        path = Path(folder) / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BackupError(
                f"MONARCH_PG_BIN is {folder}, which holds no executable {name}", hint=install
            )
    else:
        found = shutil.which(name)
        if found is None:
            raise BackupError(f"{name} is not installed (not found on PATH)", hint=install)
        path = Path(found)
    version = _version(path)
    match = _VERSION.search(version)
    if match is None:
        raise BackupError(f"cannot tell the version of {path}: it printed {version!r}")
    major = int(match.group(1))
    if major < server_major:
        raise BackupError(
            f"{path} is {version.strip()}, older than the server (PostgreSQL {server_major}); "
            f"{name} must be at least the server's major version",
            hint=install,
        )
    return path, version.strip()


def _version(path: Path) -> str:
    try:
        result = subprocess.run(
            [str(path), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"cannot run {path}: {exc}") from exc
    if result.returncode != 0:
        raise BackupError(f"{path} --version failed: {result.stderr.strip() or result.stdout}")
    return result.stdout


class Tool:
    """A running client tool with its stderr drained in the background."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | None = subprocess.DEVNULL,
    ) -> None:
        self.name = Path(argv[0]).name
        self.process = subprocess.Popen(
            list(argv), env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
            pipesize=pipe_size(),
        )
        self._stderr = bytearray()
        self._reader = threading.Thread(target=self._drain, name=f"{self.name}-stderr", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), CHUNK):
            self._stderr += chunk
            if len(self._stderr) > 2 * STDERR_KEEP:
                del self._stderr[:-STDERR_KEEP]

    def wait(self) -> int:
        """Wait for the tool to end; its exit status (negative: killed by that signal)."""
        status = self.process.wait()
        self._reader.join()
        self._close_pipes()
        return status

    @property
    def stderr(self) -> str:
        return bytes(self._stderr[-STDERR_KEEP:]).decode("utf-8", "replace")

    def kill(self) -> None:
        """Stop the tool if it still runs (on an error or an interrupt of ours)."""
        if self.process.poll() is None:
            self.process.kill()
        self.wait()

    def _close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with suppress(OSError):  # stdin of a dead reader: a broken pipe on flush
                    stream.close()
