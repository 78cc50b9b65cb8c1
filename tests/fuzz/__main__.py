"""The long fuzz run, for nightly use: ``scripts/fuzz --cases 200000 --seconds 3600``.

Starts the MongoDB-wire test server once to take samples from real producers (monarch's backups
and mongodump's outputs of a small database), stops it, then runs the cases over every enabled
target in a bounded child process (see :mod:`tests.fuzz.runner`). Prints the cases run and the
crashes found; each crash's input is kept in ``--crashes`` (replay it with ``--replay FOLDER``).
Exits 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.fuzz.runner import Report, replay, run_campaign
from tests.fuzz.samples import collect_samples
from tests.fuzz.targets import enabled_targets
from tests.servers import mongo_tools, start_mongo


def prepare_samples(dest: Path) -> Path:
    """Take the samples (see :mod:`tests.fuzz.samples`) from a test server started for it."""
    tools = mongo_tools()
    with start_mongo() as server:
        name = f"fuzz_{uuid.uuid4().hex[:8]}"
        try:
            return collect_samples(dest, mongo_url=server.database_url(name), tools=tools)
        finally:
            server.drop_database(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200_000, help="cases to run at most")
    parser.add_argument("--seconds", type=float, default=3600, help="stop after this long")
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--targets", default="", help="comma-separated (default: all)")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"),
                        help="folder for crashing inputs (default: ./fuzz-crashes)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="use samples already taken into this folder (no server needed)")
    parser.add_argument("--keep-samples", type=Path, default=None,
                        help="take the samples into this folder and keep them")
    parser.add_argument("--case-timeout", type=float, default=10.0)
    parser.add_argument("--memory-mb", type=int, default=256,
                        help="peak RSS growth a case may cause")
    parser.add_argument("--replay", type=Path, default=None,
                        help="run one saved crash folder again and print its outcome")
    options = parser.parse_args(argv)

    if options.replay is not None:
        outcome, detail = replay(options.replay)
        print(detail or outcome)
        return 1 if detail else 0
    names = [n for n in options.targets.split(",") if n] or [t.name for t in enabled_targets()]
    seed = options.seed if options.seed is not None else int(time.time())
    scratch = Path(tempfile.mkdtemp(prefix="monarch-fuzz-samples-"))
    try:
        samples = options.samples
        if samples is None:
            dest = options.keep_samples or scratch / "samples"
            print(f"taking samples into {dest} ...", flush=True)
            samples = prepare_samples(dest)
        print(f"fuzzing {', '.join(names)}: up to {options.cases} cases or "
              f"{options.seconds:.0f} s, seed {seed}", flush=True)
        report = run_campaign(samples, names, seed=seed, cases=options.cases,
                              seconds=options.seconds, crashes=options.crashes.resolve(),
                              case_timeout=options.case_timeout, memory_mb=options.memory_mb,
                              progress=_progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(report.summary())
    return 1 if report.findings else 0


def _progress(report: Report) -> None:
    print(f"  ... {report.total} cases, {len(report.findings)} crash(es)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
