"""monarch's PostgreSQL backup and restore next to running pg_dump and pg_restore directly.

One throwaway server (the tests' launcher), one generated database per size (three tables:
events, the bulk; users; orders), and side by side in one run:

- backup: ``monarch backup`` (gzip, monarch's default; zstd; none) against ``pg_dump
  --format=custom`` to a file (its own default compression, and ``--compress=0``);
- restore: ``monarch restore`` of the gzip backup into an existing database (restore into a
  scratch database, swap, drop the old one) against ``pg_restore`` into a fresh, empty database
  (created beforehand, outside the timing) from pg_dump's default-compressed file, and
  ``createdb`` followed by that ``pg_restore`` (what monarch does around pg_restore, by hand);
- copy: ``monarch copy_db`` (pg_dump's stream through monarch into pg_restore, into a scratch
  database, swapped in) against ``createdb`` then ``pg_dump | pg_restore`` through an OS pipe.

Each measurement is one child process (and its own children: pg_dump, pg_restore), reaped
with ``wait4``: wall time, client CPU (user + system) and peak RSS. Median of ``--rounds``::

    python benchmarks/pg_bench.py                    # 100,000 and 1,000,000 rows
    python benchmarks/pg_bench.py --rows 1000000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import children
import psycopg
from tests.servers.postgres import start_postgres

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
ENV = children.environment()


@dataclass(frozen=True)
class Run:
    label: str
    wall: float
    cpu: float
    rss_mb: float


def measure(label: str, argv: list[str]) -> Run:
    """Run ``argv`` once; its wall time, CPU and peak RSS (its children included)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    err = child.stderr.read().decode() if child.stderr else ""
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{label} failed ({child.returncode}): {' '.join(argv)}\n{err}")
    return Run(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def generate(url: str, rows: int) -> None:
    events, users = rows * 8 // 10, rows // 10
    orders = rows - events - users
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE, name text, score float8,"
            " created timestamptz);"
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer int REFERENCES users, "
            "total numeric(12, 2), lines jsonb);"
            "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, payload text);"
            "CREATE INDEX events_kind ON events (kind)"
        )
        conn.execute("INSERT INTO users SELECT i, 'u' || i || '@example.com', 'user ' || i, "
                     "random(), now() - i * interval '1 minute' "
                     "FROM generate_series(1, %s) i", (users,))
        conn.execute("INSERT INTO orders SELECT i, 1 + i %% %s, (random() * 500)::numeric(12,2), "
                     "jsonb_build_array(jsonb_build_object('sku', 'sku-' || i %% 97, 'qty', "
                     "1 + i %% 5)) FROM generate_series(1, %s) i", (users, orders))
        conn.execute("INSERT INTO events SELECT i, now() - i * interval '1 second', "
                     "'kind ' || i %% 23, md5(i::text) || repeat(' lorem ipsum', 1 + i %% 8) "
                     "FROM generate_series(1, %s) i", (events,))
        conn.execute("VACUUM ANALYZE")


def bench(server: object, rows: int, rounds: int, work: Path) -> list[Run]:
    uri: str = server.uri  # type: ignore[attr-defined]
    bin_dir: Path = server.bin_dir  # type: ignore[attr-defined]
    src = server.create_database(f"bench_src_{rows}")  # type: ignore[attr-defined]
    dst = server.create_database(f"bench_dst_{rows}")  # type: ignore[attr-defined]
    generate(src, rows)
    store = work / f"store-{rows}"
    config = work / f"monarch-{rows}.toml"
    config.write_text(f'[backups]\nurl = "file://{store}"\n\n[environments.src]\nurl = "{src}"\n'
                      f'\n[environments.dst]\nurl = "{dst}"\n')
    monarch = [sys.executable, "-m", "monarch", "--config", str(config)]
    dump_file = work / f"direct-{rows}.dump"
    runs: list[Run] = []
    names: dict[str, str] = {}
    for _ in range(rounds):
        for method in ("gzip", "zstd", "none"):
            runs.append(measure(f"monarch backup ({method})",
                                [*monarch, "backup", "src", "-q", "--compression", method,
                                 "--name", method]))
        runs.append(measure("pg_dump -Fc (default compression)",
                            [str(bin_dir / "pg_dump"), "--format=custom", f"--file={dump_file}",
                             f"--dbname={src}"]))
        runs.append(measure("pg_dump -Fc --compress=0",
                            [str(bin_dir / "pg_dump"), "--format=custom", "--compress=0",
                             f"--file={dump_file}.plain", f"--dbname={src}"]))
    for path in sorted(store.glob("*.manifest.json")):
        names[path.name.split("-")[-1].split(".")[0]] = path.name.removesuffix(".manifest.json")
    for _ in range(rounds):
        runs.append(measure("monarch restore (gzip backup)",
                            [*monarch, "restore", f"{names['gzip']}:dst", "-q"]))
        fresh = f"bench_fresh_{rows}"
        server.drop_database(fresh)  # type: ignore[attr-defined]
        url = server.create_database(fresh)  # type: ignore[attr-defined]
        runs.append(measure("pg_restore (default-compressed file)",
                            [str(bin_dir / "pg_restore"), "--no-owner", f"--dbname={url}",
                             str(dump_file)]))
        server.drop_database(fresh)  # type: ignore[attr-defined]
        # What monarch does around pg_restore, by hand: a new database, then the restore.
        runs.append(measure("createdb + pg_restore",
                            ["sh", "-c", '"$0" --no-password --maintenance-db="$1" "$2" && '
                             '"$3" --no-owner --dbname="$4" "$5"',
                             str(bin_dir / "createdb"), uri, fresh, str(bin_dir / "pg_restore"),
                             url, str(dump_file)]))
        server.drop_database(fresh)  # type: ignore[attr-defined]
        # copy_db streams pg_dump -> monarch -> pg_restore; against the same through an OS pipe.
        runs.append(measure("monarch copy_db", [*monarch, "copy_db", "src:dst", "-q"]))
        runs.append(measure("createdb + pg_dump -Fc --compress=0 | pg_restore",
                            ["sh", "-c", '"$0" --no-password --maintenance-db="$1" "$2" && '
                             '"$3" --format=custom --compress=0 --dbname="$4" | '
                             '"$5" --no-owner --dbname="$6"',
                             str(bin_dir / "createdb"), uri, fresh, str(bin_dir / "pg_dump"),
                             src, str(bin_dir / "pg_restore"), url]))
        server.drop_database(fresh)  # type: ignore[attr-defined]
    sizes = {f"monarch {m}": (store / f"{names[m]}.manifest.json").with_name(
        names[m] + {"gzip": ".archive.gz", "zstd": ".archive.zst", "none": ".archive"}[m]
    ).stat().st_size for m in names}
    sizes["pg_dump default"] = dump_file.stat().st_size
    print(f"\nsizes at {rows:,} rows: " + ", ".join(f"{k} {v / 1e6:.1f} MB"
                                                   for k, v in sizes.items()))
    return runs


def report(rows: int, runs: list[Run]) -> str:
    labels = list(dict.fromkeys(r.label for r in runs))
    lines = [f"\n{rows:,} rows", f"{'case':40} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}"]
    for label in labels:
        mine = [r for r in runs if r.label == label]
        lines.append(f"{label:40} {statistics.median(r.wall for r in mine):8.2f} "
                     f"{statistics.median(r.cpu for r in mine):8.2f} "
                     f"{max(r.rss_mb for r in mine):12.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print(f"{platform.python_implementation()} {platform.python_version()} on "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    with start_postgres() as server, tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
        version = subprocess.run([str(server.bin_dir / "pg_dump"), "--version"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        print(version)
        out = []
        for rows in (int(r) for r in args.rows.split(",")):
            runs = bench(server, rows, args.rounds, Path(tmp))
            out.append(report(rows, runs))
            print(out[-1], flush=True)


if __name__ == "__main__":
    main()
