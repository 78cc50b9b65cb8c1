"""Upload and download through monarch's S3 store and through boto3's transfer manager.

Both move the same bytes to and from the same S3 endpoint (moto's server or SeaweedFS, started
here, unless ``MONARCH_TEST_S3_ENDPOINT`` names another), side by side in one run. Each
measurement runs in a child process of its own, so its peak RSS is its own.

    python benchmarks/s3_bench.py                      # moto, 256 MiB, 3 rounds
    python benchmarks/s3_bench.py --server seaweedfs   # a real S3-compatible server
    python benchmarks/s3_bench.py --server both        # moto, then SeaweedFS, same settings
    python benchmarks/s3_bench.py --mib 1024 --rounds 5

Reported: the best and median speed of the rounds in MiB/s; the client's CPU time (user + system,
median) per GiB moved, which a busy machine disturbs less than speed; and the largest peak RSS
of the child, in total and above what it held just before the transfer (interpreter, boto3,
clients).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from tests.servers import start_s3  # noqa: E402
from tests.servers.s3 import ENV_ENDPOINT, LOCAL_KINDS  # noqa: E402

from monarch.config import StoreConfig  # noqa: E402
from monarch.stores import open_store  # noqa: E402

MiB = 1 << 20
CASES = ["monarch upload", "boto3 upload", "monarch download", "boto3 download"]


class RandomishStream(io.RawIOBase):
    """``total`` bytes that do not compress: one random MiB, each copy stamped with its index."""

    def __init__(self, total: int) -> None:
        self._block = bytearray(os.urandom(MiB))
        self._total = total
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        size = min(len(view), self._total - self._position)
        done = 0
        while done < size:
            offset = self._position % MiB
            if offset == 0:
                self._block[:8] = (self._position // MiB).to_bytes(8, "big")
            take = min(size - done, MiB - offset)
            view[done : done + take] = memoryview(self._block)[offset : offset + take]
            done += take
            self._position += take
        return size


def memory_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in KiB.

    Not ``ru_maxrss``: after fork and exec it still counts the parent's peak, and the parent
    here holds moto's copies of every object.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(case: str, endpoint: str, bucket: str, mib: int, part_size: str) -> None:
    """Run one case and print its figures as JSON (this is the child process)."""
    size = mib * MiB
    store = open_store(
        StoreConfig(f"s3://{bucket}/bench", {"endpoint_url": endpoint, "part_size": part_size})
    )
    client = boto3.client("s3", endpoint_url=endpoint)
    list(store.list("none"))  # both clients built before the clock starts
    client.list_objects_v2(Bucket=bucket, Prefix="none")
    source = RandomishStream(size)
    baseline = memory_kib("VmRSS")
    cpu_start = time.process_time()
    start = time.perf_counter()
    if case == "monarch upload":
        with store.writer("monarch-upload") as upload:
            buffer = bytearray(MiB)
            while n := source.readinto(buffer):
                upload.write(memoryview(buffer)[:n])
    elif case == "boto3 upload":
        client.upload_fileobj(source, bucket, "bench/boto3-upload", Config=TransferConfig())
    elif case == "monarch download":
        with store.reader("source") as stream, open(os.devnull, "wb") as sink:
            while chunk := stream.read(MiB):
                sink.write(chunk)
    elif case == "boto3 download":
        with open(os.devnull, "wb") as sink:
            client.download_fileobj(bucket, "bench/source", sink, Config=TransferConfig())
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = memory_kib("VmHWM")
    figures = {"seconds": seconds, "cpu": cpu, "peak_kib": peak, "baseline_kib": baseline}
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB to move (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every case (default 3)")
    parser.add_argument("--part-size", default="8MiB", help="monarch's part_size (default 8MiB)")
    parser.add_argument(
        "--server",
        choices=[*LOCAL_KINDS, "both"],
        default="moto",
        help="the S3 server to start, or both in turn (default moto; "
        "$MONARCH_TEST_S3_ENDPOINT overrides)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.endpoint, args.bucket, args.mib, args.part_size)
        return


    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    if os.environ.get(ENV_ENDPOINT):
        kinds = ["external"]
    else:
        kinds = list(LOCAL_KINDS) if args.server == "both" else [args.server]
    for number, kind in enumerate(kinds):
        if number:
            print()
        measure(kind, args)


def measure(kind: str, args: Any) -> None:
    """Every case, ``args.rounds`` times, against a server of ``kind``; print the table."""
    with start_s3(kind) as server:
        # The children find the server's credentials and region where boto3 looks first.
        os.environ["AWS_ACCESS_KEY_ID"] = server.access_key_id
        os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_access_key
        os.environ["AWS_DEFAULT_REGION"] = server.region
        bucket = server.create_bucket()
        bucket.client.upload_fileobj(RandomishStream(args.mib * MiB), bucket.name, "bench/source")
        results: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
        for _ in range(args.rounds):
            for case in CASES:  # interleaved, so drift in the machine hits every case alike
                command = [sys.executable, __file__, "--child", case, "--mib", str(args.mib)]
                command += ["--part-size", args.part_size, "--endpoint", server.endpoint_url]
                command += ["--bucket", bucket.name]
                output = subprocess.run(command, check=True, capture_output=True, text=True)
                results[case].append(json.loads(output.stdout))
        bucket.remove()
    report(results, args, server.kind)


def report(results: dict[str, list[dict[str, float]]], args: Any, kind: str) -> None:
    print(
        f"{args.mib} MiB, best of {args.rounds} rounds, S3 endpoint: {kind}, "
        f"monarch part_size {args.part_size}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'case':<18}{'MiB/s':>8}{'median':>8}{'CPU s/GiB':>11}{'peak RSS':>10}{'above base':>12}"
    )
    speeds: dict[str, float] = {}
    for case, runs in results.items():
        rates = [args.mib / run["seconds"] for run in runs]
        speeds[case] = max(rates)
        peak = max(run["peak_kib"] for run in runs) / 1024
        above = max(run["peak_kib"] - run["baseline_kib"] for run in runs) / 1024
        cpu = statistics.median(run["cpu"] for run in runs) * 1024 / args.mib
        print(
            f"{case:<18}{max(rates):>8.1f}{statistics.median(rates):>8.1f}{cpu:>11.2f}"
            f"{peak:>8.0f}MiB{above:>9.0f}MiB"
        )
    for way in ("upload", "download"):
        ratio = speeds[f"monarch {way}"] / speeds[f"boto3 {way}"]
        print(f"monarch/boto3 {way} speed: {ratio:.2f}")


if __name__ == "__main__":
    main()
