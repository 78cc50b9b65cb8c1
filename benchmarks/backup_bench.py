"""monarch's backup, restore and copy_db against mongodump/mongorestore and the raw limits.

One server (the tests' launcher: ``$MONARCH_TEST_MONGODB_URI``, a ``mongod`` on PATH, else
FerretDB), one generated dataset per size (several collections, mixed shapes), and in one run:

- backup: ``monarch backup`` with each compression, and gzip encrypted with age (``[backups]
  encrypt_to``, one X25519 recipient; the report gives its cost against plain gzip);
  ``mongodump --archive`` plain and ``--gzip`` (same parallelism); the raw read limit (every
  collection read as raw batches, discarded);
- restore: ``monarch restore``; ``mongorestore --archive``; the raw insert limit (an
  uncompressed archive's raw batches inserted, nothing else);
- copy: ``monarch copy_db``; ``mongodump --archive | mongorestore --archive``;
- compression alone, in this process, over the uncompressed archive; age encryption alone
  over the gzip-compressed archive (the stream monarch encrypts), through the backup writer's
  own EncryptingWriter.

Every measurement runs in child processes of its own: wall time, client CPU (user + system of
the children) and peak RSS (the largest child's high-water mark, ``VmHWM``)::

    python benchmarks/backup_bench.py                  # ~1,000,000 documents
    python benchmarks/backup_bench.py --docs 100000,1000000 --parallel 4
    python benchmarks/backup_bench.py --docs 100000 --only "backup (gzip"   # some cases only
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import children
import pyrage
from bson import ObjectId
from pymongo import MongoClient
from tests.servers import mongo_tools, start_mongo

from monarch.archive import (
    ArchiveReader,
    Documents,
    open_compressed_writer,
    open_decompressed_reader,
)
from monarch.archive.compression import CompressedWriter
from monarch.backups.encryption import EncryptingWriter
from monarch.engines.mongo import restore
from monarch.engines.mongo.dump import BATCH_BYTES
from monarch.engines.mongo.raw_batches import find_counted, insert_raw
from monarch.history import EVENTS_NAME, LOCK_NAME

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
ENV = children.environment()


@dataclass
class Run:
    label: str
    seconds: float
    cpu: float
    rss_mb: float
    note: str = ""
    walls: list[float] = field(default_factory=list)
    """Each round's wall time, CPU seconds and tree RSS series (see TreeMemory)."""
    cpus: list[float] = field(default_factory=list)
    rss_series: list[list[list[float]]] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    """The machine's 1-minute load average at the end of each round."""


def measure(label: str, *commands: list[str]) -> Run:
    """Run ``commands`` (piped into each other when several); time them and read rusage."""
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    previous = None
    for i, argv in enumerate(commands):
        last = i == len(commands) - 1
        proc = subprocess.Popen(argv, env=ENV, stdin=previous or subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL if last else subprocess.PIPE,
                                stderr=subprocess.PIPE)
        if previous is not None:
            previous.close()
        previous = proc.stdout
        procs.append(proc)
    cpu, failed = 0.0, []
    errors = {p.pid: b"" for p in procs}

    def drain(p: subprocess.Popen[bytes]) -> None:
        assert p.stderr is not None
        errors[p.pid] = p.stderr.read()

    readers = [threading.Thread(target=drain, args=(p,)) for p in procs]
    memory = TreeMemory([p.pid for p in procs], started)
    readers.append(threading.Thread(target=memory.watch, daemon=True))
    for t in readers:
        t.start()
    try:
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            if proc.returncode:
                failed.append(f"{proc.args[0]} exited {proc.returncode}: "
                              f"{errors.get(proc.pid, b'')[-400:]!r}")
        seconds = time.perf_counter() - started
    finally:
        memory.done.set()
    for t in readers:
        t.join()
    if failed:
        raise SystemExit(f"{label} failed: " + "; ".join(failed))
    return Run(label, seconds, cpu, memory.peak_mb(), walls=[seconds], cpus=[cpu],
               rss_series=[memory.series], loads=[os.getloadavg()[0]])


class TreeMemory:
    """The memory of running processes and their descendants, read from /proc.

    ``peaks`` keeps each process's own high-water mark (``VmHWM``, read every 20 ms while it
    lives: ru_maxrss would count the memory of this big process, which a child has at fork);
    ``series`` is the resident memory of the whole tree (the sum of ``VmRSS``) every
    ``every`` seconds, as ``[seconds since start, MB]``.
    """

    def __init__(self, roots: list[int], started: float, every: float = 0.05) -> None:
        self.roots, self.started, self.every = roots, started, every
        self.peaks: dict[int, int] = {}
        self.series: list[list[float]] = []
        self.done = threading.Event()

    def peak_mb(self) -> float:
        return max(self.peaks.values(), default=0) / 1024

    def watch(self) -> None:
        tree, found_at, sampled_at = set(self.roots), 0.0, -self.every
        while not self.done.is_set():
            now = time.perf_counter()
            if now - found_at > 0.5:  # children come and go rarely: look for them twice a second
                tree, found_at = _descendants(self.roots), now
            rss = 0
            for pid in tree:
                fields = _status(pid)
                if "VmHWM" in fields:  # a zombie has no memory left
                    self.peaks[pid] = max(self.peaks.get(pid, 0), fields["VmHWM"])
                    rss += fields.get("VmRSS", 0)
            if now - sampled_at >= self.every:
                self.series.append([round(now - self.started, 3), round(rss / 1024, 1)])
                sampled_at = now
            self.done.wait(0.02)


def _status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/status ({} once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in lines)
            if k.startswith("Vm") and v.strip().endswith("kB")}


def _descendants(roots: list[int]) -> set[int]:
    """``roots`` and every process below them (by each process's parent in /proc/PID/stat)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name (in parentheses) may hold spaces: the parent follows its ")".
                after_name = (entry / "stat").read_text().rsplit(")", 1)[1]
                parent[int(entry.name)] = int(after_name.split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = set(roots), True
    while grew:
        below = {pid for pid, up in parent.items() if up in tree} - tree
        tree |= below
        grew = bool(below)
    return tree


def generate(db: object, total: int, seed: int = 1) -> int:
    """Four collections of different shapes; returns the BSON bytes inserted (approximately)."""
    rng = random.Random(seed)
    base = datetime(2020, 1, 1, tzinfo=UTC)
    shapes = {  # collection -> (share of documents, document factory)
        "events": (0.45, lambda i: {"t": base + timedelta(seconds=i), "kind": rng.choice(
            ["view", "click", "buy"]), "user": rng.randrange(100_000), "v": rng.random()}),
        "users": (0.25, lambda i: {"name": f"user {i}", "email": f"user{i}@example.com",
                                   "created": base + timedelta(minutes=i), "active": i % 3 > 0,
                                   "tags": rng.sample(["a", "b", "c", "d", "e"], 3),
                                   "address": {"city": rng.choice(["Paris", "Oslo", "Lima"]),
                                               "zip": f"{rng.randrange(99999):05}"}}),
        "orders": (0.25, lambda i: {"user": ObjectId(), "total": round(rng.uniform(1, 900), 2),
                                    "lines": [{"sku": f"sku-{rng.randrange(5000)}",
                                               "qty": rng.randrange(1, 5),
                                               "price": round(rng.uniform(1, 99), 2)}
                                              for _ in range(rng.randrange(1, 6))],
                                    "note": "x" * rng.randrange(0, 200)}),
        "documents": (0.05, lambda i: {"title": f"doc {i}", "body": " ".join(
            rng.choice(["lorem", "ipsum", "dolor", "sit", "amet", "elit"])
            for _ in range(rng.randrange(100, 800)))}),
    }
    for name, (share, make) in shapes.items():
        count = int(total * share)
        batch: list[dict[str, object]] = []
        for i in range(count):
            batch.append(make(i))
            if len(batch) == 5000:
                db[name].insert_many(batch, ordered=False)  # type: ignore[index]
                batch = []
        if batch:
            db[name].insert_many(batch, ordered=False)  # type: ignore[index]
    db["users"].create_index("email", unique=True)  # type: ignore[index]
    db["events"].create_index([("user", 1), ("t", -1)])  # type: ignore[index]
    stats = db.command("dbStats")  # type: ignore[attr-defined]
    return int(stats.get("dataSize", 0))


def raw_read(url: str, parallel: int) -> None:
    """Child: read every collection as raw batches with ``parallel`` threads (one cursor per
    collection, the counting cursor monarch's dump reads through); keep nothing.

    Same query shape as monarch's dump (biggest collection first, ~4 MB batches), so the
    difference between the two is the archive writing, compression, hashing and storing.
    """
    db = MongoClient(url).get_default_database()
    sizes = {}
    for name in db.list_collection_names():
        if not name.startswith("system."):
            stats = db.command("collStats", name)
            sizes[name] = (int(stats.get("size", 0)), int(stats.get("avgObjSize", 0) or 0))
    todo = sorted(sizes, key=lambda n: sizes[n][0])  # pop() takes the biggest first
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                name = todo.pop()
            avg = sizes[name][1]
            batch = max(1, BATCH_BYTES // avg) if avg else 1000
            for _ in find_counted(db[name], batch_size=batch):
                pass

    threads = [threading.Thread(target=work) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def raw_insert(url: str, archive: str) -> None:
    """Child: send an uncompressed archive's runs of documents to the server as they are, in
    batches of the restore's size (``insert_raw``, as a restore inserts).

    One thread reads while the main thread inserts (as a restore overlaps them); nothing else:
    no staging, no checks, no indexes, one insert at a time.
    """
    db = MongoClient(url).get_default_database()
    batches: queue.Queue[tuple[str, list[memoryview], int] | None] = queue.Queue(maxsize=8)

    def read() -> None:
        runs: dict[str, tuple[list[memoryview], int, int]] = {}
        with open(archive, "rb") as f:
            for event in ArchiveReader(f):
                if not isinstance(event, Documents):  # the collection's end: send the rest
                    batch, size, _ = runs.pop(event.collection, ([], 0, 0))
                    if batch:
                        batches.put((event.collection, batch, size))
                else:
                    batch, size, count = runs.pop(event.collection, ([], 0, 0))
                    batch.append(event.data)
                    size, count = size + len(event.data), count + event.count
                    if size >= restore.BATCH_BYTES or count >= restore.BATCH_DOCUMENTS:
                        batches.put((event.collection, batch, size))
                        batch, size, count = [], 0, 0
                    runs[event.collection] = (batch, size, count)
        batches.put(None)  # the reader ends every collection with its end: nothing is left

    threading.Thread(target=read, daemon=True).start()
    while (item := batches.get()) is not None:
        insert_raw(db[item[0]], item[1], item[2])


def compress_alone(raw: Path, rounds: int = 5) -> list[Run]:
    """Each compressor over the uncompressed archive, in this process, fed 1 MiB writes.

    The best of ``rounds`` is kept. "gzip level 1 (zlib)" is what gzip falls back to where
    ISA-L is not installed.
    """
    data = Path(_resolve(str(raw), raw.parent / "store", raw.parent)).read_bytes()
    cases: list[tuple[str, str, Callable[[io.BytesIO], CompressedWriter]]] = [
        (f"{m} level {lv}", m, lambda out, m=m, lv=lv: open_compressed_writer(out, m, lv))
        for m, lv in (("zstd", 1), ("zstd", 3), ("gzip", 1), ("gzip", 6))
    ]
    cases.append(("gzip level 1 (zlib)", "gzip", lambda out: CompressedWriter(
        out, zlib.compressobj(1, zlib.DEFLATED, 31), close_raw=False)))
    runs = []
    for label, method, make in cases:
        best = back = float("inf")
        cpu, packed = 0.0, b""
        for _ in range(rounds if "level 6" not in label else 1):
            out = io.BytesIO()
            started, cpu0 = time.perf_counter(), time.process_time()
            with make(out) as w:
                for i in range(0, len(data), 1 << 20):
                    w.write(data[i : i + (1 << 20)])
            if time.perf_counter() - started < best:
                best, cpu = time.perf_counter() - started, time.process_time() - cpu0
            packed = out.getvalue()
            started = time.perf_counter()
            reader = open_decompressed_reader(io.BytesIO(packed), method)  # type: ignore[arg-type]
            while reader.read(1 << 20):
                pass
            back = min(back, time.perf_counter() - started)
        runs.append(Run(label, best, cpu, 0,
                        f"{len(data) / best / 2**20:.0f} MiB/s, ratio "
                        f"{len(data) / len(packed):.2f}, decompress "
                        f"{len(data) / back / 2**20:.0f} MiB/s"))
        if label == "gzip level 1":
            runs.append(encrypt_alone(packed, rounds))
    return runs


def encrypt_alone(packed: bytes, rounds: int = 5) -> Run:
    """age encryption (one X25519 recipient) of a gzip archive, as the backup writer does it:
    1 MiB writes into an EncryptingWriter (its thread, its bounded pipe); best of ``rounds``."""
    recipient = pyrage.x25519.Identity.generate().to_public()
    best, cpu = float("inf"), 0.0
    for _ in range(rounds):
        out = io.BytesIO()
        started, cpu0 = time.perf_counter(), time.process_time()
        writer = EncryptingWriter(out, [recipient])
        for i in range(0, len(packed), 1 << 20):
            writer.write(packed[i : i + (1 << 20)])
        writer.close()
        if time.perf_counter() - started < best:
            best, cpu = time.perf_counter() - started, time.process_time() - cpu0
    return Run("age encryption of the gzip archive", best, cpu, 0,
               f"{len(packed) / best / 2**20:.0f} MiB/s of compressed archive")


def bench_size(server_uri: str, docs: int, parallel: int, rounds: int, work: Path,
               *, only: list[str] | None = None) -> list[Run]:
    tools = mongo_tools()
    client = MongoClient(server_uri)
    for name in ("bench_src", "bench_dst"):
        client.drop_database(name)
    started = time.perf_counter()
    size = generate(client["bench_src"], docs)
    print(f"# {docs:,} documents ({size / 1e6:.0f} MB of data) generated in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    url = {n: server_uri.rstrip("/") + f"/{n}" for n in ("bench_src", "bench_dst")}
    store = work / "store"
    config = work / "monarch.toml"
    config.write_text(f'backups = "file://{store}"\n'
                      + "".join(f'[environments.{n}]\nurl = "{u}"\nprotected = false\n'
                                for n, u in (("src", url["bench_src"]), ("dst", url["bench_dst"]))))
    sealed = work / "monarch-age.toml"
    recipient = pyrage.x25519.Identity.generate().to_public()
    sealed.write_text(config.read_text().replace(
        f'backups = "file://{store}"\n',
        f'[backups]\nurl = "file://{store}"\nencrypt_to = ["{recipient}"]\n'))
    monarch = [sys.executable, "-m", "monarch", "--config", str(config)]
    monarch_age = [sys.executable, "-m", "monarch", "--config", str(sealed)]
    me = [sys.executable, __file__]
    dump = [str(tools.mongodump), f"--uri={url['bench_src']}",
            f"--numParallelCollections={parallel}", "--quiet"]
    # FerretDB needs one insertion worker and no index specs from mongorestore (see the docs).
    restore = [str(tools.mongorestore), f"--uri={url['bench_dst']}", "--nsInclude=bench_src.*",
               "--nsFrom=bench_src.*", "--nsTo=bench_dst.*", "--drop", "--noIndexRestore",
               "--numParallelCollections=1", "--numInsertionWorkersPerCollection=1", "--quiet"]
    plain, gz = work / "dump.archive", work / "dump.archive.gz"
    expected = sum(client["bench_src"][n].count_documents({})
                   for n in client["bench_src"].list_collection_names())

    def backup_case(method: str) -> Case:
        return Case(f"monarch backup ({method})", [[*monarch, "backup", "src", "--quiet",
                    "--compression", method, "--parallel", str(parallel), "--name", method]],
                    before=lambda: _remove_backups(store, method))

    def into_dst(label: str, *commands: list[str]) -> Case:
        return Case(label, list(commands), before=lambda: client.drop_database("bench_dst"),
                    check=lambda: _count(client["bench_dst"], expected))

    cases = [
        Case("raw read limit", [[*me, "raw-read", url["bench_src"], str(parallel)]]),
        backup_case("zstd"), backup_case("gzip"), backup_case("none"),
        Case("monarch backup (gzip, age-encrypted)", [[
            *monarch_age, "backup", "src", "--quiet", "--compression", "gzip", "--parallel",
            str(parallel), "--name", "gzip-age"]],
             before=lambda: _remove_backups(store, "gzip-age")),
        Case("mongodump --archive", [[*dump, f"--archive={plain}"]]),
        Case("mongodump --archive --gzip", [[*dump, f"--archive={gz}", "--gzip"]]),
        into_dst("raw insert limit", [*me, "raw-insert", url["bench_dst"], str(work / "raw")]),
        into_dst("monarch restore (zstd)", [*monarch, "restore", "@zstd:dst", "--quiet"]),
        into_dst("mongorestore --archive", [*restore, f"--archive={plain}"]),
        into_dst("monarch copy_db", [*monarch, "copy_db", "src:dst", "--quiet"]),
        into_dst("mongodump --archive | mongorestore --archive", [*dump, "--archive"],
                 [*restore, "--archive"]),
    ]
    if only:
        cases = [c for c in cases if any(o in c.label for o in only)]
    runs = run_cases(cases, rounds, lambda a: _resolve(a, store, work))
    if any(c.label == "monarch backup (none)" for c in cases):
        runs += compress_alone(work / "raw")
    client.drop_database("bench_src")
    client.drop_database("bench_dst")
    return runs


@dataclass
class Case:
    label: str
    commands: list[list[str]]
    before: Callable[[], object] | None = None
    check: Callable[[], object] | None = None
    """Run after each round of the case; a string it returns becomes the run's note."""


def run_cases(cases: list[Case], rounds: int, resolve: Callable[[str], str],
              tag: str = "", first_round: int = 1) -> list[Run]:
    """Measure every case ``rounds`` times, interleaved (so a slow spell of the machine hits
    every case), resolving each argument with ``resolve``; one summary per case. Rounds are
    numbered from ``first_round`` in the progress lines."""
    results: dict[str, list[Run]] = {c.label: [] for c in cases}
    for round_ in range(rounds):
        for case in cases:
            if case.before is not None:
                case.before()
            run = measure(case.label, *[[resolve(a) for a in argv] for argv in case.commands])
            if case.check is not None:
                note = case.check()
                run.note = note if isinstance(note, str) else run.note
            results[case.label].append(run)
            print(f"#   {tag}round {first_round + round_}: {run.label}: {run.seconds:.1f} s, "
                  f"{run.cpu:.1f} CPU s, {run.rss_mb:.0f} MB", flush=True)
    return [summarize(rs) for rs in results.values()]


def _remove_backups(store: Path, label: str) -> None:
    if store.exists():
        for path in store.iterdir():
            if f"-{label}." in path.name:
                path.unlink()


def _resolve(arg: str, store: Path, work: Path) -> str:
    """``@zstd`` is the zstd backup's name; ``WORK/raw`` the uncompressed backup's archive."""
    if arg.startswith("@"):
        method, _, rest = arg[1:].partition(":")
        name = next(p.name for p in store.iterdir()
                    if p.name.endswith(f"-{method}.manifest.json")).split(".")[0]
        return f"{name}:{rest}"
    if arg == str(work / "raw") and not Path(arg).exists():
        return str(next(p for p in store.iterdir() if p.name.endswith("-none.archive")))
    return arg


def _count(db: object, expected: int) -> str:
    # monarch's lock and audit entry in the target are the environment's, not data
    names = set(db.list_collection_names()) - {LOCK_NAME, EVENTS_NAME}  # type: ignore[attr-defined]
    got = sum(db[n].count_documents({}) for n in names)  # type: ignore[index]
    if got != expected:
        raise SystemExit(f"restored {got} documents, expected {expected}")
    return ""


def summarize(runs: list[Run]) -> Run:
    """Median wall time and CPU of the rounds; the largest peak RSS; the best time noted."""
    walls = sorted(r.seconds for r in runs)
    cpus = sorted(r.cpu for r in runs)
    note = f"best {walls[0]:.1f} s" if len(runs) > 1 else runs[0].note
    return Run(runs[0].label, statistics.median(walls), statistics.median(cpus),
               max(r.rss_mb for r in runs), note, walls=[w for r in runs for w in r.walls],
               cpus=[c for r in runs for c in r.cpus],
               rss_series=[s for r in runs for s in r.rss_series],
               loads=[x for r in runs for x in r.loads])


def report(docs: int, runs: list[Run]) -> str:
    seconds = {r.label: r.seconds for r in runs}
    title = f"{docs:,} documents (median of the rounds)" if docs else "compression alone"
    lines = [f"\n### {title}\n",
             "| case | wall s | client CPU s | peak RSS MB | vs raw limit | note |",
             "|---|---:|---:|---:|---:|---|"]
    for r in runs:
        base = None
        if r.label.startswith(("monarch backup", "mongodump --archive")) and "|" not in r.label:
            base = seconds.get("raw read limit")
        elif r.label.startswith(("monarch restore", "mongorestore")):
            base = seconds.get("raw insert limit")
        ratio = f"{r.seconds / base:.2f}x" if base else ""
        if r.label == "monarch backup (gzip, age-encrypted)" and "monarch backup (gzip)" in seconds:
            ratio += f" ({r.seconds / seconds['monarch backup (gzip)']:.3f}x plain gzip)"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb else ""
        lines.append(f"| {r.label} | {r.seconds:.1f} | {r.cpu:.1f} | {rss} | {ratio} | "
                     f"{r.note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default="1000000", help="documents, comma-separated sizes")
    parser.add_argument("--parallel", type=int, default=4, help="collections at once")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--only", help="run only the cases whose label has one of these "
                        "comma-separated texts")
    args = parser.parse_args()
    # A stopped benchmark must stop its server too: turn SIGTERM into a normal exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("# command: python benchmarks/backup_bench.py " + " ".join(sys.argv[1:]), flush=True)
    with start_mongo() as server, tempfile.TemporaryDirectory(prefix="monarch-bench-") as tmp:
        print(f"# server: {server.kind} {server.version}", flush=True)
        for docs in (int(d) for d in args.docs.split(",")):
            work = Path(tmp) / str(docs)
            work.mkdir()
            only = args.only.split(",") if args.only else None
            runs = bench_size(server.uri, docs, args.parallel, args.rounds, work, only=only)
            print(report(docs, runs), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "raw-read":
        raw_read(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "raw-insert":
        raw_insert(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "compress":  # compress ARCHIVE: that part alone
        print(report(0, compress_alone(Path(sys.argv[2]))))
    else:
        main()
