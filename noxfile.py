"""The parts of the test command that need other interpreters or clean environments.

``scripts/test`` runs the whole suite on the newest Python it finds, then these sessions:

- ``compat``: a fast but real subset (engines, archive, configuration and the CLI) on every
  other Python that ``requires-python`` allows and the machine has; a missing one is reported
  as skipped, never as passed.
- ``package``: the sdist and the wheel as users get them, the wheel installed into clean
  virtualenvs (without and with each extra) and smoke-tested there.

Run one by hand with ``.venv/bin/nox -s package`` (``-r`` reuses the virtualenvs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
nox.options.reuse_venv = "yes"
# uv (a dev dependency) makes the sessions' virtualenvs and installs into them in seconds, from
# its cache when it can; pip and virtualenv where uv is missing.
nox.options.default_venv_backend = "uv|virtualenv"
# A Python the machine lacks is a skipped session, never one uv fetches from elsewhere.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["compat", "package"]


def _supported() -> list[str]:
    """The ``3.x`` versions the classifiers promise (kept in step with requires-python)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    prefix = "Programming Language :: Python :: "
    return [c.removeprefix(prefix) for c in project["classifiers"]
            if c.startswith(prefix) and c.count(".") == 1]


# The interpreter running nox (the test command's .venv) already ran the whole suite.
CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHERS = [v for v in _supported() if v != CURRENT]
COMPAT_TESTS = (
    "tests/engines",
    "tests/archive",
    "tests/core",
    "tests/backups/test_cli_backups.py",
    "tests/backups/test_restore_cli.py",
)


@nox.session(python=OTHERS)
def compat(session: nox.Session) -> None:
    """The engines', archive's, configuration's and CLI's tests on another Python."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider",
                *(session.posargs or ("-m", "not slow", *COMPAT_TESTS)))


@nox.session(python=CURRENT)
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel; install the wheel into clean virtualenvs and use it."""
    # The build backend goes into the session's reused virtualenv rather than a fresh isolated
    # one per build: the same setuptools, without the minute of setting it up each run.
    session.install("build", "setuptools>=64")
    with tempfile.TemporaryDirectory(prefix="monarch-package-") as tmp:
        dist = Path(tmp) / "dist"
        session.run("python", "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT),
                    silent=True)
        wheels = sorted(dist.glob("monarch-*.whl"))
        sdists = sorted(dist.glob("monarch-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            session.error(f"expected one wheel and one sdist in {dist}, found {os.listdir(dist)}")
        for extra in ("", "s3", "postgres"):
            _check_install(session, Path(tmp) / f"venv-{extra or 'plain'}", wheels[0], extra)


def _check_install(session: nox.Session, venv: Path, wheel: Path, extra: str) -> None:
    session.log(f"clean virtualenv with monarch{f'[{extra}]' if extra else ''}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    requirement = f"monarch[{extra}] @ {wheel.as_uri()}" if extra else str(wheel)
    session.run(python, "-m", "pip", "install", "-q", requirement, external=True)
    monarch = str(venv / "bin" / "monarch")
    session.run(monarch, "--version", external=True)
    session.run(monarch, "--help", external=True, silent=True)
    session.run(python, "-c", "import monarch; assert monarch.load_config", external=True)
    _check_extras(session, venv, extra)


# What each extra brings, and the command whose one-line error names it when it is missing.
_EXTRA_PROBES = {
    "s3": ('backups = "s3://monarch-package-check"\n', ["list_backups"],
           "pip install 'monarch[s3]'"),
    "postgres": ("", ["list_migrations", "pg"], "pip install 'monarch[postgres]'"),
}


def _check_extras(session: nox.Session, venv: Path, installed: str) -> None:
    """Without an extra, the command that needs it stops with the documented one-line error;
    with it, that error is gone."""
    for extra, (backups, command, hint) in _EXTRA_PROBES.items():
        project = venv / f"project-{extra}"
        project.mkdir()
        (project / "migrations").mkdir()
        (project / "monarch.toml").write_text(
            backups + '[environments.pg]\nurl = "postgresql://127.0.0.1:9/none"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "MONARCH_CONFIG": str(project / "monarch.toml"),
               # No real account or server is reached: a missing extra fails before either.
               "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
        done = subprocess.run([str(venv / "bin" / "monarch"), *command], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        lines = done.stderr.strip().splitlines()
        says_missing = f"Try: {hint}" in lines
        if installed == extra and says_missing:
            session.error(f"monarch[{extra}] is installed, yet {command} says: {done.stderr}")
        if installed != extra:
            if done.returncode == 0 or not says_missing or len(lines) != 2:
                session.error(f"without monarch[{extra}], {command} should fail with "
                              f"'Error: ...' and 'Try: {hint}'; it said: {done.stderr!r}")
            session.log(f"without [{extra}]: {lines[0]}")
