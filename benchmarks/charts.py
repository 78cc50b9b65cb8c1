"""Draw wire_bench's JSON results as PNG charts (matplotlib: the ``bench`` or ``dev`` extra).

One command redraws every chart of docs/backups.md and the README from the committed results::

    python benchmarks/charts.py                     # docs/figures/wire.json -> docs/figures/
    python benchmarks/charts.py results.json --out /tmp/charts

Three charts, one panel per dataset shape:

- ``throughput.png``: MB of BSON per second (median of the rounds) of every case, per size;
- ``cpu_per_gb.png``: the client's CPU seconds (user + system) per GB of BSON;
- ``rss_backup.png``: the client process tree's resident memory over time during a backup
  (monarch with each compression against mongodump), the first round of the largest size.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
COLORS = {"monarch": "#2b6cb0", "mongodump": "#dd8452", "mongorestore": "#c44e52",
          "mongodump | mongorestore": "#8c613c", "limit": "#8c8c8c", "compression": "#55a868"}
SHAPES = {"small": "small documents", "large": "large documents",
          "many": "many collections", "huge": "one huge collection"}
# Alpha per size, in order of size: the first size solid, the next lighter.
SHADES = (1.0, 0.55, 0.3)

Row = dict[str, object]


def load(paths: list[Path]) -> tuple[dict[str, object], list[Row]]:
    """The rows of every results file, and the first file's machine description."""
    machine: dict[str, object] = {}
    rows: list[Row] = []
    for path in paths:
        results = json.loads(path.read_text())
        machine = machine or results["machine"]
        rows += results["rows"]
    return machine, rows


def caption(machine: dict[str, object], rows: list[Row]) -> str:
    """The machine, its load while the cases ran, the rounds and the command, in two lines."""
    loads = sorted(x for r in rows for x in r.get("loads", []))  # type: ignore[attr-defined]
    load = f", load average {loads[0]:.1f}-{loads[-1]:.1f}" if loads else ""
    rounds = sorted({len(r["walls"]) for r in rows if r["tool"] != "compression"}) or [0]  # type: ignore[arg-type]
    median = f"{rounds[0]}" if rounds[0] == rounds[-1] else f"{rounds[0]}-{rounds[-1]}"
    return (f"{machine.get('cpus')} CPUs{load}, Python {machine.get('python')}, "
            f"{machine.get('tools', '')}; parallel {machine.get('parallel')}; median of "
            f"{median} rounds\n{machine.get('command', '')}")


def short(label: str) -> str:
    """A case's label without ``--archive``, which every MongoDB tools' case has."""
    return label.replace(" --archive", "")


def panels(shapes: list[str], *, height: float) -> tuple[plt.Figure, list[Axes]]:
    columns = 2 if len(shapes) > 1 else 1
    lines = -(-len(shapes) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(6 * columns, height * lines),
                             squeeze=False)
    for extra in axes.flat[len(shapes):]:
        extra.set_visible(False)
    return fig, list(axes.flat[: len(shapes)])


def bar_chart(rows: list[Row], value: Callable[[Row], float], unit: str,
              machine: dict[str, object], path: Path) -> None:
    """Horizontal bars of ``value`` per case, one panel per shape, one bar per size."""
    rows = [r for r in rows if r["tool"] != "compression"]
    shapes = list(dict.fromkeys(str(r["shape"]) for r in rows))
    sizes = sorted({float(r["gb"]) for r in rows})  # type: ignore[arg-type]
    labels = list(dict.fromkeys(str(r["label"]) for r in rows))
    fig, axes = panels(shapes, height=0.32 * len(labels) * max(1, len(sizes) * 0.7) + 1.2)
    thickness = 0.8 / len(sizes)
    for ax, shape in zip(axes, shapes, strict=True):
        for k, gb in enumerate(sizes):
            for i, label in enumerate(labels):
                row = next((r for r in rows if r["shape"] == shape and r["gb"] == gb
                            and r["label"] == label), None)
                if row is None:
                    continue
                y = i + (k - (len(sizes) - 1) / 2) * thickness
                figure = value(row)
                ax.barh(y, figure, height=thickness * 0.9, color=COLORS[str(row["tool"])],
                        alpha=SHADES[min(k, len(SHADES) - 1)])
                ax.text(figure, y, f" {figure:,.0f}" if figure >= 10 else f" {figure:.1f}",
                        va="center", fontsize=7)
        ax.set_yticks(range(len(labels)), [short(label) for label in labels], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(SHAPES.get(shape, shape), fontsize=10)
        ax.set_xlabel(unit, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(x=0.15)
        ax.grid(axis="x", alpha=0.3)
    if len(sizes) > 1:
        handles = [plt.Rectangle((0, 0), 1, 1, color="#555555",
                                 alpha=SHADES[min(k, len(SHADES) - 1)])
                   for k in range(len(sizes))]
        fig.legend(handles, [f"{gb:g} GB" for gb in sizes], loc="upper right", fontsize=8)
    finish(fig, unit, caption(machine, rows), path)


def rss_chart(rows: list[Row], machine: dict[str, object], path: Path) -> None:
    """Resident MB of the client over time during each backup, one panel per shape."""
    backups = [r for r in rows if str(r["label"]).startswith(("monarch backup", "mongodump --"))
               and "|" not in str(r["label"]) and r.get("rss_series")]
    largest = max((float(r["gb"]) for r in backups), default=0.0)  # type: ignore[arg-type]
    backups = [r for r in backups if r["gb"] == largest]
    shapes = list(dict.fromkeys(str(r["shape"]) for r in backups))
    fig, axes = panels(shapes, height=3.2)
    for ax, shape in zip(axes, shapes, strict=True):
        mine = [r for r in backups if r["shape"] == shape]
        # mongodump --gzip may run ten times longer than the rest: the axis ends a little
        # after the others, and its line is cut there.
        ends = [r["rss_series"][0][-1][0] for r in mine  # type: ignore[index]
                if r["rss_series"][0] and "--gzip" not in str(r["label"])]  # type: ignore[index]
        for row in mine:
            label = str(row["label"])
            series = row["rss_series"][0]  # type: ignore[index]
            style = "--" if "gzip" in label else ":" if "zstd" in label else "-"
            cut = ends and series and series[-1][0] > 1.2 * max(ends)
            shown = [p for p in series if p[0] <= 1.2 * max(ends)] if cut else series
            ax.plot([p[0] for p in shown], [p[1] for p in shown], style, linewidth=1.2,
                    color=COLORS[str(row["tool"])],
                    label=short(label) + (f" (cut; ends at {series[-1][0]:.0f} s)" if cut else ""))
        if ends:
            ax.set_xlim(0, 1.2 * max(ends))
        ax.set_title(f"{SHAPES.get(shape, shape)}, {largest:g} GB", fontsize=10)
        ax.set_xlabel("seconds", fontsize=8)
        ax.set_ylabel("client resident MB", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    finish(fig, "client memory during a backup (first round)", caption(machine, rows), path)


def finish(fig: plt.Figure, title: str, note: str, path: Path) -> None:
    fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.005, note, fontsize=6, color="#444444", va="bottom")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn = io.BytesIO()
    fig.savefig(drawn, dpi=100)
    plt.close(fig)
    # A palette of 64 colours keeps each file small enough to commit (a third of RGBA's size).
    Image.open(drawn).convert("RGB").quantize(64).save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", type=Path, default=[FIGURES / "wire.json"],
                        help="wire_bench.py --json files (default: docs/figures/wire.json)")
    parser.add_argument("--out", type=Path, default=FIGURES, help="folder of the PNG files")
    args = parser.parse_args()
    machine, rows = load(args.results)
    bar_chart(rows, lambda r: float(r["mb_per_s"]), "throughput, MB of BSON per second",  # type: ignore[arg-type]
              machine, args.out / "throughput.png")
    bar_chart(rows, lambda r: float(r["cpu_per_gb"]), "client CPU seconds per GB of BSON",  # type: ignore[arg-type]
              machine, args.out / "cpu_per_gb.png")
    rss_chart(rows, machine, args.out / "rss_backup.png")


if __name__ == "__main__":
    main()
