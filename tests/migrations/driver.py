"""Driving monarch on a test project: in this process through the CLI's entry point, or as
``python -m monarch`` child processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from monarch.cli import main
from monarch.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def migration_source(
    base: str, run: str, *, rollback: str | None = None, attrs: str = "", header: str = ""
) -> str:
    """A migration file's text: a class ``M(base)`` whose run() (and rollback()) body is given.

    ``attrs`` are class attributes; ``header`` goes after the import (more imports, helpers).
    """
    body = [f"from monarch import {base}\n{header}\n\nclass M({base}):"]
    if attrs:
        body.append(textwrap.indent(textwrap.dedent(attrs).strip(), "    "))
    body.append("    def run(self):")
    body.append(textwrap.indent(textwrap.dedent(run).strip() or "pass", "        "))
    if rollback is not None:
        body.append("    def rollback(self):")
        body.append(textwrap.indent(textwrap.dedent(rollback).strip(), "        "))
    return "\n".join(body) + "\n"


class Driver:
    """Runs monarch on the project in ``root``: in this process, or as child processes."""

    root: Path
    spawned: list[subprocess.Popen[str]]

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    @property
    def config_path(self) -> Path:
        """The configuration file passed as ``--config``."""
        return self.root / "monarch.toml"

    def config(self) -> Config:
        return load_config(self.config_path)

    def stop_spawned(self) -> None:
        """Kill what :meth:`spawn` started and is still running (fixture teardown)."""
        for process in self.spawned:
            if process.poll() is None:
                process.kill()
            process.communicate()

    def cli(self, *args: str, input: str | None = None, tty: bool = False) -> CliResult:
        """Run ``monarch`` in this process, through its real entry point."""
        logger = logging.getLogger("monarch")
        handlers = list(logger.handlers)
        runner = CliRunner()
        with runner.isolation(input=input) as (out, err, _):
            if tty:
                sys.stdin.isatty = lambda: True  # type: ignore[method-assign]
            try:
                main(["--config", str(self.config_path), *args])
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
            finally:
                # The CLI installs a log handler on this stream; it must not outlive it.
                logger.handlers[:] = handlers
            sys.stdout.flush()
            sys.stderr.flush()
            return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    def process(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m monarch`` as a separate process."""
        return subprocess.run(
            [sys.executable, "-m", "monarch", *args],
            cwd=self.root,
            env=self.environ(env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``python -m monarch``; the fixture kills it at teardown if it still runs."""
        process = subprocess.Popen(
            [sys.executable, "-m", "monarch", *args],
            cwd=self.root,
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.spawned.append(process)
        return process

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "MONARCH_CONFIG"}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
        )
        env.update(extra or {})
        return env
