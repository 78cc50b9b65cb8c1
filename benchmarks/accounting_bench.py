"""What write accounting costs ``migrate`` on MongoDB: one migration making single-document
updates one by one (100,000 by default), and 200 trivial migrations, each with accounting on and
off (``MONARCH_WRITE_ACCOUNTING=off``), through the library's ``migrate``.

Run from the repository root (a script, not a test)::

    .venv/bin/python benchmarks/accounting_bench.py [--updates N] [--migrations N] [--repeat N]

``--server test`` (the default) starts the server the tests use (``$MONARCH_TEST_MONGODB_URI``,
a ``mongod`` on PATH, or FerretDB); ``--server wire`` the benchmark-only wire server
(``tests/servers/wire``), which answers from memory, so that the client's own cost shows. Runs
alternate on and off, after one warm-up run, so that drift in the server's speed hits both alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from pymongo import MongoClient  # noqa: E402
from tests.servers import start_mongo  # noqa: E402
from tests.servers.process import StopsOnExit  # noqa: E402
from tests.servers.wire import start_wire  # noqa: E402

import monarch  # noqa: E402
from monarch.accounting import SWITCH  # noqa: E402

UPDATES = """\
from monarch import MongoMigration


class UpdateEachMigration(MongoMigration):
    def run(self):
        items = self.db.items
        for n in range({count}):
            items.update_one({{"_id": n}}, {{"$set": {{"v": n + 1}}}})
"""

TRIVIAL = """\
from monarch import MongoMigration


class Step{n}Migration(MongoMigration):
    def run(self):
        pass
"""


def project(folder: Path, url: str, files: dict[str, str]) -> monarch.Config:
    folder.mkdir()
    (folder / "monarch.toml").write_text(f'[environments.bench]\nurl = "{url}"\n')
    (folder / "migrations").mkdir()
    for name, text in files.items():
        (folder / "migrations" / f"{name}.py").write_text(text)
    return monarch.load_config(folder / "monarch.toml")


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def measure(
    config: monarch.Config, reset: object, repeat: int
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of ``migrate`` with accounting on and off."""
    times: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    reset()  # type: ignore[operator]
    monarch.migrate(config, "bench")  # warm-up: imports, first connection
    for _ in range(repeat):
        for mode in ("on", "off"):
            reset()  # type: ignore[operator]
            os.environ[SWITCH] = mode
            before, started = cpu(), time.perf_counter()
            monarch.migrate(config, "bench")
            times[mode].append((time.perf_counter() - started, cpu() - before))
    os.environ.pop(SWITCH, None)
    return {
        mode: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for mode, runs in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--migrations", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", choices=("test", "wire"), default="test")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="monarch-bench-") as tmp:
        database = f"bench_{uuid.uuid4().hex[:8]}"
        server: StopsOnExit
        if args.server == "wire":
            wire = start_wire(Path(tmp), megabytes=0.01)
            server, url, kind = wire, wire.database_url(database), "the wire server (memory)"
        else:
            test = start_mongo()
            server, url, kind = test, test.database_url(database), f"{test.kind} {test.version}"
        client: MongoClient[dict[str, object]] = MongoClient(url)

        def drop() -> None:
            client.drop_database(database)

        big = project(Path(tmp) / "updates", url,
                      {"20240101000000_update_each": UPDATES.format(count=args.updates)})

        def seeded() -> None:
            drop()
            items = client[database].items
            for start in range(0, args.updates, 10_000):
                stop = min(start + 10_000, args.updates)
                items.insert_many([{"_id": n, "v": n} for n in range(start, stop)])

        rows.append((f"1 migration, {args.updates:,} update_one calls",
                     measure(big, seeded, args.repeat)))

        trivial = project(Path(tmp) / "trivial", url, {
            f"{20240101000000 + n:014d}_step_{n}": TRIVIAL.format(n=n)
            for n in range(args.migrations)
        })
        rows.append((f"{args.migrations} trivial migrations",
                     measure(trivial, drop, args.repeat)))
        drop()
        client.close()
        server.stop()

    print(f"server: {kind}; median of {args.repeat} runs each")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    width = max(len(label) for label, _ in rows)
    print(f"  {'':{width}}  {'on: wall':>9}  {'off: wall':>9}  {'on: CPU':>8}  {'off: CPU':>8}"
          "  wall cost")
    for label, result in rows:
        (won, con), (woff, coff) = result["on"], result["off"]
        print(f"  {label.ljust(width)}  {won:8.2f}s  {woff:8.2f}s  {con:7.2f}s  {coff:7.2f}s"
              f"  {(won - woff) / woff * 100:+6.1f} %")


if __name__ == "__main__":
    main()
