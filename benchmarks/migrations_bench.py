"""How long the migration commands take: ``monarch --help``, and ``list_migrations`` and
``migrate`` over 200 trivial migrations against the test MongoDB-wire server.

Run from the repository root (a script, not a test)::

    .venv/bin/python benchmarks/migrations_bench.py [--migrations 200] [--repeat 5]

It starts the same server the tests use (``$MONARCH_TEST_MONGODB_URI``, a ``mongod`` on PATH, or
FerretDB) and reports wall-clock times of the real command (``python -m monarch``, a fresh
process each time) and of the library calls alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.servers import MongoServer, start_mongo  # noqa: E402

import monarch  # noqa: E402

TRIVIAL = """\
from monarch import MongoMigration


class Step{n}Migration(MongoMigration):
    def run(self):
        pass
"""


def timed(
    action: Callable[[], object], repeat: int, reset: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Median wall time and median CPU time (this process and its children) of ``action``."""
    walls, cpus = [], []
    for _ in range(repeat):
        if reset is not None:
            reset()
        before = _cpu()
        started = time.perf_counter()
        action()
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - before)
    return statistics.median(walls), statistics.median(cpus)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def command(project: Path, *args: str) -> Callable[[], None]:
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}

    def run() -> None:
        subprocess.run(
            [sys.executable, "-m", "monarch", *args],
            cwd=project,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    return run


def make_project(folder: Path, url: str, count: int) -> None:
    (folder / "monarch.toml").write_text(f'[environments.bench]\nurl = "{url}"\n')
    migrations = folder / "migrations"
    migrations.mkdir()
    for n in range(count):
        stamp = f"{20240101000000 + n:014d}"
        name = f"{stamp}_step_{n}"
        (migrations / f"{name}.py").write_text(TRIVIAL.format(n=n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()


    server: MongoServer = start_mongo()
    with server, tempfile.TemporaryDirectory(prefix="monarch-bench-") as tmp:
        database = f"bench_{uuid.uuid4().hex[:8]}"
        project = Path(tmp)
        make_project(project, server.database_url(database), args.migrations)
        config = monarch.load_config(project / "monarch.toml")

        def reset() -> None:
            server.drop_database(database)

        def migrated() -> None:
            reset()
            monarch.migrate(config, "bench")

        n = args.migrations
        rows = [
            (
                "python -c pass (interpreter alone)",
                timed(
                    lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat
                ),
            ),
            ("monarch --help", timed(command(project, "--help"), args.repeat)),
            (
                f"monarch list_migrations ({n} pending)",
                timed(command(project, "list_migrations", "bench"), args.repeat, reset),
            ),
            (
                f"monarch migrate ({n} trivial migrations)",
                timed(command(project, "migrate", "bench"), args.repeat, reset),
            ),
            (
                f"monarch list_migrations ({n} applied)",
                timed(command(project, "list_migrations", "bench"), args.repeat, migrated),
            ),
            (
                "monarch migrate (nothing pending)",
                timed(command(project, "migrate", "bench"), args.repeat, migrated),
            ),
            (
                f"library list_migrations ({n} pending)",
                timed(lambda: monarch.list_migrations(config, "bench"), args.repeat, reset),
            ),
            (
                f"library migrate ({n} trivial migrations)",
                timed(lambda: monarch.migrate(config, "bench"), args.repeat, reset),
            ),
        ]
        reset()
    load = os.getloadavg()[0]
    print(f"server: {server.kind} {server.version}; median of {args.repeat} runs")
    print(f"load average at the end: {load:.1f} on {os.cpu_count()} CPUs")
    width = max(len(label) for label, _ in rows)
    print(f"  {'':{width}}  {'wall':>8}  {'CPU':>8}")
    for label, (wall, cpu) in rows:
        print(f"  {label.ljust(width)}  {wall * 1000:6.0f} ms  {cpu * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
