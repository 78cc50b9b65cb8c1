"""Prometheus metrics of backups and verifies, for node_exporter's textfile collector.

``monarch backup ENV --metrics-file /var/lib/node_exporter/textfile/monarch.prom`` leaves, per
environment (label ``environment``) and per command (``backup``, ``verify``, ``drill``)::

    monarch_backup_success{environment="production"} 1
    monarch_backup_last_run_timestamp_seconds{environment="production"} 1764651600
    monarch_backup_last_success_timestamp_seconds{environment="production"} 1764651600
    monarch_backup_duration_seconds{environment="production"} 41.2
    monarch_backup_size_bytes{environment="production"} 180334112
    monarch_backup_documents{environment="production"} 120000

``success`` and ``duration`` describe the last run; the timestamp of the last success, the size
and the documents are those of the last successful run and survive a failed one (an alert on
``time() - monarch_backup_last_success_timestamp_seconds > 26 * 3600`` keeps firing while
backups fail). Several environments and both commands can share one file: each write keeps the
samples of the others. The file is replaced atomically (a temporary file in the same folder,
then a rename), so the collector never reads half of it; concurrent writers of one file take
turns through an advisory lock on ``.<file>.lock`` beside it.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from monarch.errors import MonarchError

PREFIX = "monarch"

# Metric suffix -> (help text, kept from the last success when a run fails)
_FAMILIES = {
    "success": ("1 if the last {what} succeeded, 0 if it failed.", False),
    "last_run_timestamp_seconds": ("Unix time the last {what} ended.", False),
    "last_success_timestamp_seconds": ("Unix time the last successful {what} ended.", True),
    "duration_seconds": ("Seconds the last {what} took.", False),
    "size_bytes": ("Bytes of the archive of the last successful {what}.", True),
    "documents": ("Documents (or rows) in the last successful {what}.", True),
}
_COMMANDS = {"backup": "monarch backup", "verify": "monarch verify of a backup",
             "drill": "restore drill of a backup (monarch verify --restore)"}
_SAMPLE = re.compile(
    r'^(monarch_(backup|verify|drill)_[a-z_]+)\{environment="((?:[^"\\]|\\.)*)"\} (\S+)$'
)


@dataclass(frozen=True)
class Run:
    """One command's outcome for one environment, as the metrics describe it."""

    command: str
    """``"backup"``, ``"verify"`` or ``"drill"``."""
    environment: str
    ok: bool
    finished: datetime
    seconds: float
    size: int | None = None
    documents: int | None = None


def write_metrics(path: str | os.PathLike[str], run: Run) -> None:
    """Record ``run`` in the textfile ``path`` (see the module), replacing it atomically.

    Raises :class:`~monarch.errors.MonarchError` when the file cannot be written.
    """
    target = Path(path)
    try:
        with _locked(target):
            samples = _read(target)
            _update(samples, run)
            _replace(target, _render(samples))
    except OSError as exc:
        raise MonarchError(f"cannot write the metrics file {target}: {exc.strerror or exc}",
                           hint="check that its folder exists and is writable") from exc


def _update(samples: dict[tuple[str, str], float], run: Run) -> None:
    values: dict[str, float | None] = {
        "success": 1.0 if run.ok else 0.0,
        "last_run_timestamp_seconds": run.finished.timestamp(),
        "last_success_timestamp_seconds": run.finished.timestamp(),
        "duration_seconds": run.seconds,
        "size_bytes": None if run.size is None else float(run.size),
        "documents": None if run.documents is None else float(run.documents),
    }
    for suffix, (_, kept) in _FAMILIES.items():
        value = values[suffix]
        if value is None or (kept and not run.ok):
            continue  # a failed run leaves the last success's figures in place
        samples[(f"{PREFIX}_{run.command}_{suffix}", run.environment)] = value


def _render(samples: dict[tuple[str, str], float]) -> str:
    lines: list[str] = []
    for command, what in _COMMANDS.items():
        for suffix, (help_text, _) in _FAMILIES.items():
            name = f"{PREFIX}_{command}_{suffix}"
            rows = sorted((env, value) for (metric, env), value in samples.items()
                          if metric == name)
            if not rows:
                continue
            lines += [f"# HELP {name} {help_text.format(what=what)}", f"# TYPE {name} gauge"]
            lines += [f'{name}{{environment="{_escape(env)}"}} {_number(value)}'
                      for env, value in rows]
    return "\n".join(lines) + "\n" if lines else ""


def _read(path: Path) -> dict[tuple[str, str], float]:
    """The samples a previous write left (lines in another shape are dropped)."""
    samples: dict[tuple[str, str], float] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return samples
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            samples[(match.group(1), _unescape(match.group(3)))] = float(match.group(4))
        except ValueError:
            continue
    return samples


def _replace(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # the collector runs as another user
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
