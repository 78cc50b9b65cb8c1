"""`self.batches(...)`: walking a collection by `_id` ranges, with checkpoints that make a killed
or failed migration resume where it stopped, and progress with counts and ETA."""

from __future__ import annotations

import datetime
import io
import os
import signal
from typing import Any

import pytest
from bson import ObjectId

import monarch
from monarch.migrations.progress import LoopProgress, StreamReporter
from tests.migrations.conftest import Project

A = "20240101000001_backfill"

RECORD_WALK = """
    walked = []
    for batch in self.batches("items", size={size}):
        walked.extend(d["_id"] for d in batch)
    self.db.walk.insert_one({{"ids": walked}})
"""


@pytest.mark.parametrize("size", [1, 3, 4, 1000])
def test_batches_visit_every_document_once_in_id_order_even_with_mixed_id_types(
    project: Project, size: int
) -> None:
    ids: list[Any] = [5, 1, 2.5, 10, "b", "a", ObjectId(), ObjectId()]
    ids += [datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), -3]
    project.db.items.insert_many([{"_id": i} for i in ids])
    project.write(A, RECORD_WALK.format(size=size))
    assert project.cli("migrate", "development").code == 0
    walk = project.db.walk.find_one()
    assert walk is not None
    expected = [d["_id"] for d in project.db.items.find().sort("_id", 1)]
    assert [repr(i) for i in walk["ids"]] == [repr(i) for i in expected]
    assert len(walk["ids"]) == len(ids)


def test_batches_respect_the_filter_and_the_size(project: Project) -> None:
    project.db.items.insert_many([{"_id": i, "kind": "ab"[i % 2]} for i in range(11)])
    project.write(
        A,
        """
        sizes = [len(b) for b in self.batches("items", {"kind": "a"}, size=2)]
        self.db.walk.insert_one({"sizes": sizes})
        """,
    )
    assert project.cli("migrate", "development").code == 0
    walk = project.db.walk.find_one()
    assert walk is not None and walk["sizes"] == [2, 2, 2]


def test_batches_take_a_collection_object_as_well_as_a_name(project: Project) -> None:
    project.db.items.insert_many([{"_id": i} for i in range(5)])
    project.write(
        A,
        """
        sizes = [len(b) for b in self.batches(self.db.items, size=2)]
        self.db.walk.insert_one({"sizes": sizes})
        """,
    )
    assert project.cli("migrate", "development").code == 0
    walk = project.db.walk.find_one()
    assert walk is not None and walk["sizes"] == [2, 2, 1]


PROCESS = """
    import os
    attempt = self.db.attempts.find_one_and_update(
        {"_id": 1}, {"$inc": {"n": 1}}, upsert=True, return_document=True
    )["n"]
    for index, batch in enumerate(self.batches("items", size=10)):
        if attempt == 1 and index == 3:
            if os.environ.get("KILL_MYSELF"):
                os.kill(os.getpid(), 9)
            raise RuntimeError("stopped half-way")
        self.db.seen.insert_many([{"doc": d["_id"], "attempt": attempt} for d in batch])
"""


def seen_by_attempt(project: Project) -> dict[int, int]:
    counts: dict[int, int] = {}
    for doc in project.db.seen.find():
        counts[doc["attempt"]] = counts.get(doc["attempt"], 0) + 1
    return counts


def assert_each_document_processed_once(project: Project, total: int) -> None:
    docs = [d["doc"] for d in project.db.seen.find()]
    assert sorted(docs) == list(range(total))


def test_a_failed_batch_migration_resumes_from_its_checkpoint(project: Project) -> None:
    project.db.items.insert_many([{"_id": i} for i in range(45)])
    project.write(A, PROCESS)
    failed = project.cli("migrate", "development")
    assert failed.code == 1
    record = project.records()[A]
    assert record["state"] == "failed"
    assert record["checkpoint"] == [{"key": "items", "last_id": 29, "done": 30, "done_types": []}]
    resumed = project.cli("migrate", "development")
    assert resumed.code == 0, resumed.output
    assert "resumed from its checkpoint" in resumed.stdout
    assert seen_by_attempt(project) == {1: 30, 2: 15}
    assert_each_document_processed_once(project, 45)
    assert project.records()[A]["checkpoint"] == []


def test_a_killed_batch_migration_resumes_after_the_last_finished_batch(
    project: Project,
) -> None:
    project.db.items.insert_many([{"_id": i} for i in range(45)])
    project.write(A, PROCESS)
    killed = project.process(
        "migrate", "development", "--lock-lease", "1", env={"KILL_MYSELF": "1"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert project.records()[A]["state"] == "running"
    resumed = project.process("migrate", "development", "--lock-timeout", "30")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{A} was interrupted" in resumed.stderr
    assert "resumed from its checkpoint" in resumed.stdout
    assert seen_by_attempt(project) == {1: 30, 2: 15}
    assert_each_document_processed_once(project, 45)


def test_an_applied_migration_run_again_starts_from_scratch(project: Project) -> None:
    project.db.items.insert_many([{"_id": i} for i in range(7)])
    project.write(
        A,
        """
        n = sum(len(b) for b in self.batches("items", size=3))
        self.db.counts.insert_one({"n": n})
        """,
    )
    assert project.cli("migrate", "development").code == 0
    assert project.cli("migrate_one", A, "development").code == 0
    assert [d["n"] for d in project.db.counts.find()] == [7, 7]


def test_batches_report_progress_as_plain_lines_when_not_on_a_terminal(
    project: Project,
) -> None:
    project.db.items.insert_many([{"_id": i} for i in range(5)])
    project.write(A, "for _ in self.batches('items', size=2): pass")
    result = project.cli("migrate", "development")
    assert result.code == 0
    assert f"  {A}: items: 0/5 (0%)" in result.stderr
    assert "\r" not in result.stderr


def test_custom_checkpoints_and_progress_for_hand_written_loops(project: Project) -> None:
    project.write(
        A,
        """
        state = self.load_checkpoint("loop") or {"i": 0}
        for i in range(state["i"], 4):
            self.progress(i, 4, label="loop")
            self.db.loop.insert_one({"i": i})
            self.save_checkpoint("loop", {"i": i + 1})
            if i == 1 and not self.db.failed_once.find_one():
                self.db.failed_once.insert_one({})
                raise RuntimeError("first attempt stops after i=1")
        """,
    )
    assert project.cli("migrate", "development").code == 1
    assert project.cli("migrate", "development").code == 0
    assert sorted(d["i"] for d in project.db.loop.find()) == [0, 1, 2, 3]


def test_progress_line_on_a_terminal_shows_counts_rate_and_eta() -> None:
    err = io.StringIO()
    reporter = StreamReporter(io.StringIO(), err, tty=True)
    reporter.progress(LoopProgress(A, "items", 2500, 10000, 0, 5.0))
    text = err.getvalue()
    assert text.startswith("\r")
    assert "items: 2,500/10,000 (25%), 500/s, ETA 0:00:15" in text


def test_progress_rate_and_eta_count_only_this_runs_work() -> None:
    resumed = LoopProgress(A, "items", 6000, 10000, 5000, 10.0)
    assert resumed.rate == 100
    assert resumed.eta == 40
    assert LoopProgress(A, "items", 0, None, 0, 0.0).describe() == "items: 0"


def test_library_reports_progress_through_a_given_reporter(project: Project) -> None:
    project.db.items.insert_many([{"_id": i} for i in range(4)])
    project.write(A, "for _ in self.batches('items', size=2): pass")
    seen: list[LoopProgress] = []

    class Collect:
        def message(self, text: str, *, warning: bool = False) -> None:
            pass

        def started(self, step: object) -> None:
            pass

        def progress(self, progress: LoopProgress) -> None:
            seen.append(progress)

        def finished(self, outcome: object) -> None:
            pass

    monarch.migrate(project.config(), "development", reporter=Collect())  # type: ignore[arg-type]
    assert [(p.done, p.total) for p in seen] == [(0, 4), (2, 4), (4, 4)]
    assert os.environ.get("KILL_MYSELF") is None
