"""Client-bound figures: monarch and the MongoDB tools against a server that costs nothing.

The server is the tests' wire server (tests/servers/wire/: Go, serves a generated dataset from
memory, counts inserts and discards them), so every figure here is the client's own cost: what
decides on a real cluster whose server streams faster than one client can take. For each shape
(small, large, many collections, one huge collection) one server serves ``--gb`` of BSON, and
in one run, rounds interleaved:

- backup: ``monarch backup`` (none, gzip, zstd); ``mongodump --archive`` plain and ``--gzip``;
  the raw read limit (each collection read as raw batches with monarch's cursor, one cursor
  per collection, batches discarded);
- restore: ``monarch restore`` (of the zstd backup); ``mongorestore --archive`` (of the plain
  dump); the raw insert limit (the uncompressed archive's runs of documents sent as they are,
  one insert at a time);
- copy: ``monarch copy_db`` against ``mongodump --archive | mongorestore --archive``;
- framing + compression alone, in this process, over the uncompressed archive.

Same parallelism on both sides (``--parallel``, default 4: monarch's ``--parallel`` and restore
workers, mongodump/mongorestore ``--numParallelCollections``). Wall time, MB/s of BSON, client
CPU seconds per GB (user + system of the child processes), peak RSS (the largest client
process's VmHWM) and, for the JSON results, the client process tree's resident memory every
50 ms of each round (read from /proc)::

    python benchmarks/wire_bench.py                         # 1 GB of each shape, 2 rounds
    python benchmarks/wire_bench.py --gb 0.1 --shapes small --rounds 1
    python benchmarks/wire_bench.py --gb 1,10 --shapes huge # two sizes (10 GB: slow, disk-heavy)
    python benchmarks/wire_bench.py --json docs/figures/wire.json   # keep every figure
    python benchmarks/charts.py docs/figures/wire.json      # ... and draw them (docs/figures/)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "benchmarks")]

from backup_bench import Case, Run, compress_alone, run_cases, summarize  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.servers import mongo_tools  # noqa: E402
from tests.servers.wire import DATABASE, SHAPES, start_wire  # noqa: E402

from monarch.history import EVENTS_NAME, LOCK_NAME  # noqa: E402

BENCH = str(ROOT / "benchmarks" / "backup_bench.py")


@dataclass
class Row:
    """One case of one shape and size: the medians, and each round as measured."""

    shape: str
    gb: float
    label: str
    tool: str
    """monarch, mongodump, mongorestore, mongodump | mongorestore, limit or compression."""
    seconds: float
    cpu: float
    rss_mb: float
    mb_per_s: float
    cpu_per_gb: float
    note: str = ""
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rss_series: list[list[list[float]]] = field(default_factory=list)
    """Per round, the client process tree's resident MB every 50 ms: [[seconds, MB], ...]."""
    loads: list[float] = field(default_factory=list)


def tool_of(label: str) -> str:
    if "limit" in label:
        return "limit"
    if label.startswith("monarch"):
        return "monarch"
    if label.startswith("mongo"):
        return label.partition(" --")[0] if "|" not in label else "mongodump | mongorestore"
    return "compression"


def bench_shape(shape: str, gb: float, *, parallel: int, round_: int, work: Path,
                only: list[str] | None, skip: list[str] | None = None) -> tuple[int, list[Run]]:
    """One round of every case against a server of ``gb`` GB of ``shape``: the BSON bytes
    served and the runs (compression alone in the first round only)."""
    tools = mongo_tools()
    with start_wire(work, shape=shape, megabytes=gb * 1000) as server:
        client: MongoClient[dict[str, object]] = MongoClient(server.uri, directConnection=True)
        src = client[DATABASE]
        names = src.list_collection_names()
        size = sum(int(src.command("collStats", n)["size"]) for n in names)
        expected = sum(src[n].estimated_document_count() for n in names)
        print(f"# {shape}: {len(names)} collections, {expected:,} documents, "
              f"{size / 1e6:,.0f} MB of BSON", flush=True)
        url = {"src": server.database_url(), "dst": server.database_url("dst")}
        store = work / "store"
        config = work / "monarch.toml"
        config.write_text(f'backups = "file://{store}"\n' + "".join(
            f'[environments.{n}]\nurl = "{u}"\nprotected = false\n' for n, u in url.items()))
        monarch = [sys.executable, "-m", "monarch", "--config", str(config)]
        dump = [str(tools.mongodump), f"--uri={url['src']}",
                f"--numParallelCollections={parallel}", "--quiet"]
        # No database in mongorestore's URI: it would take it for --db and restore nothing.
        restore = [str(tools.mongorestore), f"--uri={server.uri}", f"--nsFrom={DATABASE}.*",
                   "--nsTo=dst.*", f"--numParallelCollections={parallel}",
                   "--numInsertionWorkersPerCollection=1", "--quiet"]
        plain, gz = work / "dump.archive", work / "dump.archive.gz"

        def drop_dst() -> None:
            client.drop_database("dst")

        def landed() -> None:
            # monarch's lock and audit entry in the target are the environment's, not data
            got = sum(client.dst[n].estimated_document_count()
                      for n in set(client.dst.list_collection_names()) - {LOCK_NAME, EVENTS_NAME})
            if got != expected:
                raise SystemExit(f"{shape}: {got:,} documents arrived, expected {expected:,}")

        def backup(method: str) -> Case:
            def clear() -> None:
                for path in store.glob(f"*-{method}.*"):
                    path.unlink()
            return Case(f"monarch backup ({method})", [[
                *monarch, "backup", "src", "--quiet", "--compression", method,
                "--parallel", str(parallel), "--name", method]], before=clear)

        def into_dst(label: str, *commands: list[str]) -> Case:
            return Case(label, list(commands), before=drop_dst, check=landed)

        def named(method: str) -> str:
            found = next(store.glob(f"*-{method}.manifest.json"))
            return found.name.split(".")[0]

        cases = [
            Case(READ_LIMIT,
                 [[sys.executable, BENCH, "raw-read", url["src"], str(parallel)]]),
            backup("none"), backup("gzip"), backup("zstd"),
            Case("mongodump --archive", [[*dump, f"--archive={plain}"]]),
            Case("mongodump --archive --gzip", [[*dump, f"--archive={gz}", "--gzip"]]),
            into_dst("raw insert limit", [sys.executable, BENCH, "raw-insert", url["dst"],
                                          "@none-archive"]),
            into_dst("monarch restore (zstd)", [*monarch, "restore", "@zstd:dst", "--quiet"]),
            into_dst("mongorestore --archive", [*restore, f"--archive={plain}"]),
            into_dst("monarch copy_db", [*monarch, "copy_db", "src:dst", "--quiet"]),
            into_dst("mongodump --archive | mongorestore --archive", [*dump, "--archive"],
                     [*restore, "--archive"]),
        ]
        if only:
            cases = [c for c in cases if any(o in c.label for o in only)]
        if skip:
            cases = [c for c in cases if not any(s in c.label for s in skip)]
        runs = run_cases(cases, 1, lambda a: _resolve(a, store, named), f"{gb:g} GB {shape} ",
                         first_round=round_)
        unknown = [ln for ln in server.log().splitlines() if "unknown" in ln]
        if unknown:
            print("# the server met commands it does not know:\n#   " + "\n#   ".join(unknown))
        raw = store / f"{named('none')}.archive" if list(store.glob("*-none.archive")) else None
        if raw is not None and round_ == 1 and (not only or "compress" in only):
            (work / "raw").symlink_to(raw)
            runs += compress_alone(work / "raw", rounds=2)
    return size, runs


def rows_of(measured: dict[tuple[float, str], tuple[int, dict[str, list[Run]]]]) -> list[Row]:
    """One row per size, shape and case: the summary of its rounds so far."""
    rows = []
    for (gb, shape), (size, cases) in measured.items():
        for runs in cases.values():
            r = summarize(runs)
            rows.append(Row(shape, gb, r.label, tool_of(r.label), r.seconds, r.cpu, r.rss_mb,
                            size / 1e6 / r.seconds, r.cpu / (size / 1e9), r.note, r.walls,
                            r.cpus, r.rss_series, r.loads))
    return rows


def _resolve(arg: str, store: Path, named: Callable[[str], str]) -> str:
    """``@zstd:dst`` names the zstd backup; ``@none-archive`` is the plain backup's archive."""
    if arg == "@none-archive":
        return str(store / f"{named('none')}.archive")
    if arg.startswith("@"):
        method, _, rest = arg[1:].partition(":")
        return f"{named(method)}:{rest}"
    return arg


# Each monarch case and the MongoDB tools' case it is measured against, side by side.
RIVALS = {"monarch backup (none)": "mongodump --archive",
          "monarch backup (gzip)": "mongodump --archive --gzip",
          "monarch backup (zstd)": "mongodump --archive --gzip",
          "monarch restore (zstd)": "mongorestore --archive",
          "monarch copy_db": "mongodump --archive | mongorestore --archive"}


READ_LIMIT = "raw read limit (raw batches)"


def report(rows: list[Row]) -> str:
    """The Markdown table: medians, against the limits and against the MongoDB tools.

    "vs limit" and "vs tool" are wall-time ratios (below 1: faster than the limit or the tool).
    """
    lines = ["\n### Median of the rounds\n",
             "| GB | shape | case | wall s | MB/s | client CPU s/GB | peak RSS MB | vs limit "
             "| vs tool | load | note |", "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for gb, shape in dict.fromkeys((r.gb, r.shape) for r in rows):
        mine = [r for r in rows if r.shape == shape and r.gb == gb]
        seconds = {r.label: r.seconds for r in mine}
        for r in mine:
            base = None
            if r.label.startswith(("monarch backup", "mongodump --archive")) and "|" not in r.label:
                base = next((t for label, t in seconds.items()
                             if label.startswith("raw read limit")), None)
            elif r.label.startswith(("monarch restore", "mongorestore")):
                base = seconds.get("raw insert limit")
            ratio = f"{r.seconds / base:.2f}x" if base else ""
            rival = seconds.get(RIVALS.get(r.label, ""))
            against = f"{r.seconds / rival:.2f}x" if rival else ""
            rss = f"{r.rss_mb:.0f}" if r.rss_mb else ""
            measured = r.tool != "compression"
            speed = f"{r.mb_per_s:,.0f}" if measured else ""
            cpu = f"{r.cpu_per_gb:.1f}" if measured else ""
            load = f"{statistics.median(r.loads):.1f}" if r.loads else ""
            label = r.label.replace("|", "\\|")
            lines.append(f"| {gb:g} | {shape} | {label} | {r.seconds:.1f} | {speed} | {cpu} "
                         f"| {rss} | {ratio} | {against} | {load} | {r.note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", default="1", help="GB of BSON per shape, comma-separated sizes")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument("--parallel", type=int, default=4, help="collections at once")
    parser.add_argument("--rounds", type=int, default=2, help="repetitions (median reported)")
    parser.add_argument("--only", help="only the cases whose label has one of these "
                        "comma-separated texts ('compress' for compression alone)")
    parser.add_argument("--skip", help="leave out the cases whose label has one of these "
                        "comma-separated texts")
    parser.add_argument("--json", help="also write the machine and every row (with each "
                        "round's times and memory over time) to this JSON file, the input "
                        "of benchmarks/charts.py")
    parser.add_argument("--table", metavar="JSON", help="measure nothing: print the table of "
                        "a results file written by --json")
    args = parser.parse_args()
    if args.table:
        results = json.loads(Path(args.table).read_text())
        print(f"# {results['machine']['command']}")
        print(report([Row(**r) for r in results["rows"]]))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("# command: python benchmarks/wire_bench.py " + " ".join(sys.argv[1:]), flush=True)
    started = time.perf_counter()
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "tools": tools_version(),
               "command": "python benchmarks/wire_bench.py " + " ".join(sys.argv[1:]),
               "parallel": args.parallel, "rounds": args.rounds,
               "load_before": os.getloadavg()}
    only = args.only.split(",") if args.only else None
    measured: dict[tuple[float, str], tuple[int, dict[str, list[Run]]]] = {}
    # Rounds outermost: every shape and size is measured once before any is measured again,
    # so a slow spell of the (shared) machine is spread over all, and a run stopped early
    # has every case of its first round.
    with tempfile.TemporaryDirectory(prefix="monarch-wire-") as tmp:
        for round_ in range(1, args.rounds + 1):
            for gb in (float(g) for g in args.gb.split(",")):
                for shape in args.shapes.split(","):
                    work = Path(tmp) / f"{shape}-{gb:g}-{round_}"
                    work.mkdir()
                    size, runs = bench_shape(shape, gb, parallel=args.parallel, round_=round_,
                                             work=work, only=only,
                                             skip=args.skip.split(",") if args.skip else None)
                    shutil.rmtree(work)
                    cases = measured.setdefault((gb, shape), (size, {}))[1]
                    for run in runs:
                        cases.setdefault(run.label, []).append(run)
                    rows = rows_of(measured)
                    print(report([r for r in rows if (r.gb, r.shape) == (gb, shape)]), flush=True)
                    if args.json:  # kept as it grows: a stopped run keeps what it measured
                        write_json(Path(args.json), machine, rows, time.perf_counter() - started)
    print(report(rows_of(measured)))
    print(f"# {time.perf_counter() - started:.0f} s in all; load average "
          f"{machine['load_before']} before, {os.getloadavg()} after")


def write_json(path: Path, machine: dict[str, object], rows: list[Row], seconds: float) -> None:
    machine = machine | {"load_after": os.getloadavg(), "seconds": round(seconds)}
    path.write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}))


def tools_version() -> str:
    out = subprocess.run([str(mongo_tools().mongodump), "--version"], capture_output=True,
                         text=True, check=False).stdout
    return out.splitlines()[0] if out else ""

if __name__ == "__main__":
    main()
