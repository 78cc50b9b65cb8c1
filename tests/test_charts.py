"""benchmarks/charts.py draws wire_bench's JSON results: one command, three small PNG files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ("throughput.png", "cpu_per_gb.png", "rss_backup.png")


def row(shape: str, gb: float, label: str, tool: str, seconds: float) -> dict[str, object]:
    series = [[t / 10, 40 + t * (3 if tool == "monarch" else 5)] for t in range(30)]
    return {"shape": shape, "gb": gb, "label": label, "tool": tool, "seconds": seconds,
            "cpu": seconds / 2, "rss_mb": 120.0, "mb_per_s": gb * 1000 / seconds,
            "cpu_per_gb": seconds / 2 / gb, "note": "", "walls": [seconds, seconds + 0.1],
            "cpus": [seconds / 2] * 2, "rss_series": [series, series]}


def fixture(path: Path) -> None:
    cases = [("raw read limit (raw batches)", "limit", 1.0),
             ("monarch backup (zstd)", "monarch", 1.3), ("monarch backup (gzip)", "monarch", 1.2),
             ("mongodump --archive", "mongodump", 1.4),
             ("monarch copy_db", "monarch", 2.0),
             ("mongodump --archive | mongorestore --archive", "mongodump | mongorestore", 3.0),
             ("zstd level 1", "compression", 0.5)]
    rows = [row(shape, gb, label, tool, seconds * gb * 100)
            for gb in (0.01, 0.1) for shape in ("small", "huge")
            for label, tool, seconds in cases]
    machine = {"cpus": 2, "python": "3.13.0", "tools": "mongodump version: 100.10.0",
               "command": "python benchmarks/wire_bench.py --gb 0.01,0.1", "parallel": 4,
               "rounds": 2, "load_before": [1.5, 1.2, 1.0]}
    path.write_text(json.dumps({"machine": machine, "rows": rows}))


def test_one_command_turns_a_results_file_into_three_small_png_charts(tmp_path: Path) -> None:
    results = tmp_path / "wire.json"
    fixture(results)
    out = tmp_path / "figures"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "charts.py"), str(results),
                           "--out", str(out)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(CHARTS)
    for name in CHARTS:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 600 and height >= 200, (name, width, height)
        assert len(data) < 150_000, (name, len(data))
        assert name in done.stdout
