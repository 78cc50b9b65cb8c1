"""Progress renderers: bars on a terminal, periodic lines otherwise, nothing when quiet."""

from __future__ import annotations

import io
import threading

from monarch.cli.progress import LineProgress, TerminalProgress, progress_for
from monarch.progress import Item, NullProgress, Summary, format_duration, format_size


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_come_every_interval_with_rate_and_eta() -> None:
    out, clock = io.StringIO(), Clock()
    progress = LineProgress(out, interval=5.0, clock=clock)

    progress.start("backup", [Item("users", 1000, 100_000), Item("logs", 1000, 50_000)])
    clock.now += 1
    progress.advance("users", 100, 10_000)  # too soon for a line
    clock.now += 9
    progress.advance("users", 400, 40_000)
    progress.finish_item("users")

    lines = out.getvalue().splitlines()
    assert lines[0] == "backup: 2 collections (~2,000 documents)"
    assert lines[1] == ("backup: 0/2 collections, 500/2,000 documents (25%), 50.0 kB, "
                        "5.0 kB/s, ETA 30.0 s")
    assert lines[2] == "  users: 500 documents, 50.0 kB"
    assert len(lines) == 3


def test_terminal_bars_show_each_active_collection_and_a_total() -> None:
    out, clock = Tty(), Clock()
    progress = TerminalProgress(out, clock=clock)

    progress.start("backup", [Item("users", 1000), Item("orders", None)])
    clock.now += 2
    progress.advance("users", 500, 2_000_000)
    progress.advance("orders", 10, 1000)
    clock.now += 2
    progress.advance("users", 0, 0)

    screen = out.getvalue()
    assert "\x1b[" in screen  # redrawn in place
    last = screen.rsplit("\x1b[J", 1)[-1]
    assert "users" in last and "[##########----------]  50%" in last and "500/1,000 docs" in last
    assert "orders" in last and "10 docs" in last
    assert "backup: 0/2 collections, 510 documents" in last

    progress.finish_item("users")
    assert "done users: 500 documents, 2.0 MB" in out.getvalue()
    progress.finish(None)
    assert out.getvalue().endswith("\x1b[J")  # the live region is cleared at the end


def test_progress_for_picks_by_terminal_and_quiet() -> None:
    assert isinstance(progress_for(Tty()), TerminalProgress)
    assert isinstance(progress_for(io.StringIO()), LineProgress)
    assert isinstance(progress_for(Tty(), quiet=True), NullProgress)


def test_renderers_take_calls_from_many_threads() -> None:
    out = io.StringIO()
    progress = LineProgress(out, interval=0.0)
    progress.start("backup", [Item(f"c{i}", 1000) for i in range(4)])

    def work(name: str) -> None:
        for _ in range(1000):
            progress.advance(name, 1, 10)
        progress.finish_item(name)

    threads = [threading.Thread(target=work, args=(f"c{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(line for line in out.getvalue().splitlines() if line.startswith("  c")) == [
        f"  c{i}: 1,000 documents, 10.0 kB" for i in range(4)]


def test_a_broken_stream_never_fails_the_operation() -> None:
    out = io.StringIO()
    out.close()
    progress = LineProgress(out, interval=0.0)

    progress.start("backup", [Item("a")])
    progress.advance("a", 1, 1)
    progress.finish(None)


def test_summary_line_and_formats() -> None:
    summary = Summary("backup", 3, 1200, 4_100_000, 2.0)

    assert summary.line() == ("backup: 3 collections, 1,200 documents, 4.1 MB in 2.0 s "
                              "(2.0 MB/s)")
    assert format_size(999) == "999 B" and format_size(1_500_000_000) == "1.5 GB"
    assert format_duration(0.42) == "0.4 s"
    assert format_duration(245) == "4:05" and format_duration(3723) == "1:02:03"
