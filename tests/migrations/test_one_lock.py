"""One lock per environment: a restore, copy or drop never interleaves with a migration run (or
with each other); each waits for the other, naming the holder; and each is recorded in the
environment's audit trail, which belongs to the environment and survives the swap. On MongoDB,
PostgreSQL and SQLite, with real processes."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

import monarch
from monarch.config import Environment
from monarch.engines import engine_for
from monarch.engines.postgres import drop as postgres_drop
from monarch.errors import MonarchError
from monarch.history import RESTORE, Event, HistoryStore
from monarch.progress import Item, Summary
from tests.migrations.conftest import AnyProject, Project, SQLProject

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"
pytestmark = pytest.mark.slow


def _gated(p: AnyProject, name: str) -> tuple[Path, Path]:
    """Write migration ``name``: it says it started (a marker file), then waits for the gate
    file (at most a minute)."""
    marker, gate = p.root / f"{name}.started", p.root / f"{name}.gate"
    p.write(
        name,
        f"""
        import os, time
        open({str(marker)!r}, "w").close()
        for _ in range(1200):
            if os.path.exists({str(gate)!r}):
                break
            time.sleep(0.05)
        """,
    )
    return marker, gate


def _wait_for(what: str, predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _states(p: AnyProject) -> dict[str, str]:
    report = monarch.list_migrations(p.config(), "development")
    return {m.name: m.state for m in report.migrations}


class GatedProgress:
    """A restore's progress that holds the restore (and so its lock) at its start until
    ``go`` is set."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()

    def start(self, action: str, items: Sequence[Item]) -> None:
        self.started.set()
        assert self.go.wait(60), "the test never let the restore go on"

    def advance(self, item: str, documents: int, size: int) -> None:
        pass

    def finish_item(self, item: str) -> None:
        pass

    def finish(self, summary: Summary | None) -> None:
        pass


def test_a_restore_waits_for_a_running_migrate_names_it_and_proceeds_after(
    any_project: AnyProject,
) -> None:
    p = any_project
    p.counting(A)
    assert p.cli("migrate", "development").code == 0
    backup = str(monarch.backup(p.config(), "development").name)
    marker, gate = _gated(p, B)
    migrating = p.spawn("migrate", "development", "--lock-lease", "2")
    _wait_for("the migration to start", lambda: marker.exists() or migrating.poll() is not None)
    assert migrating.poll() is None, migrating.communicate()

    refused = p.process("restore", f"{backup}:development", "--lock-timeout", "0", "-q")
    assert refused.returncode == 1
    assert "environment 'development' is locked by" in refused.stderr
    assert f"(pid {migrating.pid}, `migrate development`) since " in refused.stderr
    restoring = p.spawn("restore", f"{backup}:development", "--lock-timeout", "60", "-q")
    assert restoring.stderr is not None
    notice = restoring.stderr.readline()
    assert "waiting up to" in notice and f"pid {migrating.pid}, `migrate development`" in notice
    assert " since " in notice
    time.sleep(3)  # past the migrate's lease: only its heartbeat keeps the restore out
    assert restoring.poll() is None
    gate.touch()

    _out, err = migrating.communicate(timeout=60)
    assert migrating.returncode == 0, err
    _out, err = restoring.communicate(timeout=120)
    assert restoring.returncode == 0, err
    # The restore came after the migration: the backup's history, where B never ran, is back.
    assert _states(p) == {A: "applied", B: "pending"}
    entries = monarch.list_history(p.config(), "development").entries
    assert [(e.kind, e.migration) for e in entries] == [("restore", None), ("migrate", A)]
    assert entries[0].source == backup
    assert entries[0].command == f"restore {backup} development"


def test_a_migrate_waits_for_a_running_restore_and_runs_after_it(
    any_project: AnyProject,
) -> None:
    p = any_project
    p.counting(A)
    assert p.cli("migrate", "development").code == 0
    backup = str(monarch.backup(p.config(), "development").name)
    p.counting(B)
    gated = GatedProgress()
    failures: list[BaseException] = []

    def restore() -> None:
        try:
            monarch.restore(p.config(), backup, "development", progress=gated)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
            gated.started.set()

    thread = threading.Thread(target=restore)
    thread.start()
    try:
        assert gated.started.wait(60) and not failures, failures
        migrating = p.spawn("migrate", "development", "--lock-timeout", "60")
        assert migrating.stderr is not None
        notice = migrating.stderr.readline()
        assert "waiting up to" in notice and f"`restore {backup} development`" in notice
        time.sleep(1)
        assert migrating.poll() is None
    finally:
        gated.go.set()
        thread.join(120)
    assert not failures, failures
    out, err = migrating.communicate(timeout=120)
    assert migrating.returncode == 0, err
    assert B in out
    # B ran after the restore (before it, the restore would have taken its record away).
    assert _states(p) == {A: "applied", B: "applied"}
    assert p.runs() == {A: 1, B: 1}
    kinds = [(e.kind, e.migration) for e in monarch.list_history(p.config(), "development").entries]
    assert kinds == [("migrate", B), ("restore", None), ("migrate", A)]


def test_restore_and_drop_are_recorded_and_earlier_audit_entries_survive_them(
    any_project: AnyProject,
) -> None:
    p = any_project
    p.counting(A)
    p.counting(B)
    p.write(C, "pass")
    assert p.cli("migrate_one", C, "development").code == 0
    backup = str(monarch.backup(p.config(), "development").name)  # C applied, A and B not
    assert p.cli("baseline", "development", "--to", A).code == 0

    restored = p.cli("restore", f"{backup}:development", "-q")

    assert restored.code == 0, restored.output
    assert "could not be recorded" not in restored.stderr
    data = json.loads(p.cli("history", "development", "--json").stdout)
    assert [e["kind"] for e in data["entries"]] == ["restore", "baseline", "migrate"]
    assert data["entries"][0]["source"] == backup
    # The entry counts what was restored in the engine's own noun, singular for one.
    engine = p.config().environment("development").engine
    what = {"mongo": "1 collection", "postgres": "2 tables", "sqlite": "1 table"}[engine]
    assert data["entries"][0]["summary"] == f"restored backup {backup} ({what})"
    # The restored history has no baseline: A is pending again, as in the backup.
    assert _states(p) == {A: "pending", B: "pending", C: "applied"}

    dropped = p.cli("drop_db", "development", "--yes")

    assert dropped.code == 0, dropped.output
    entries = monarch.list_history(p.config(), "development").entries
    if isinstance(p, SQLProject):
        # PostgreSQL carries the trail into the empty database it swaps in; SQLite keeps it
        # beside the file it removes. The migration records went with the data.
        assert [e.kind for e in entries] == ["drop_db", "restore", "baseline"]
        assert entries[0].summary == f"dropped the database ({what})"
        assert _states(p) == {A: "pending", B: "pending", C: "pending"}
    else:
        # MongoDB's trail lives in the database, which is gone: nothing is left to record in.
        assert entries == ()


class LookAtTheSwap:
    """A restore's progress that, when PostgreSQL says the database is in place (after the
    swap ended the session of the restore's lock, before the restore returns), reads the
    history as a migrate that took the lock at that moment would."""

    def __init__(self, project: SQLProject) -> None:
        self.project = project
        self.seen: list[tuple[str, str | None]] = []

    def start(self, action: str, items: Sequence[Item]) -> None:
        pass

    def advance(self, item: str, documents: int, size: int) -> None:
        pass

    def finish_item(self, item: str) -> None:
        entries = monarch.list_history(self.project.config(), "development").entries
        self.seen = [(e.kind, e.migration) for e in entries]

    def finish(self, summary: Summary | None) -> None:
        pass


def _a_applied(p: SQLProject) -> SQLProject:
    p.counting(A)
    assert p.cli("migrate", "development").code == 0
    return p


ON_POSTGRES = pytest.mark.parametrize("sql_project", ["postgres"], indirect=True)


@ON_POSTGRES
def test_a_postgres_restore_is_in_the_history_as_soon_as_its_data_is_in_place(
    sql_project: SQLProject,
) -> None:
    p = _a_applied(sql_project)
    backup = str(monarch.backup(p.config(), "development").name)
    look = LookAtTheSwap(p)

    result = monarch.restore(p.config(), backup, "development", progress=look)

    # The swap ended the lock's session: the entry must already be there, with the data.
    assert look.seen == [("restore", None), ("migrate", A)]
    entries = monarch.list_history(p.config(), "development").entries
    assert [(e.kind, e.migration) for e in entries] == look.seen
    assert entries[0].source == backup
    assert entries[0].summary == (
        f"restored backup {backup} ({len(result.tables)} tables)")


@ON_POSTGRES
def test_a_postgres_restore_that_fails_before_the_swap_leaves_neither_data_nor_entry(
    sql_project: SQLProject,
) -> None:
    p = _a_applied(sql_project)
    engine = engine_for(p.config().environment("development"))
    try:
        dump = io.BytesIO()
        engine.dump(dump)
        p.counting(B)
        assert p.cli("migrate", "development").code == 0
        before = monarch.list_history(p.config(), "development").entries
        made: list[Event] = []

        def audit(store: HistoryStore, count: int) -> Event:
            event = Event(id="failed-restore", kind=RESTORE, at=store.now(), user="t", host="h",
                          pid=1, command="restore", version="0", summary=f"restored {count}")
            made.append(event)
            return event

        def refuse() -> None:
            raise RuntimeError("refused just before the swap")

        with pytest.raises(RuntimeError, match="refused just before the swap"):
            engine.restore(io.BytesIO(dump.getvalue()), audit=audit, before_swap=refuse)
    finally:
        engine.close()
    assert [e.id for e in made] == ["failed-restore"]  # written into the new database...
    after = monarch.list_history(p.config(), "development").entries
    assert after == before  # ...which never came: no entry, and B's record is still there
    assert _states(p) == {A: "applied", B: "applied"}


def _kinds(p: SQLProject) -> list[str]:
    return [e.kind for e in monarch.list_history(p.config(), "development").entries]


@ON_POSTGRES
def test_a_postgres_drop_is_in_the_history_as_soon_as_the_empty_database_is_in_place(
    sql_project: SQLProject, monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = sql_project
    p.counting(A)
    assert p.cli("baseline", "development", "--to", A).code == 0  # an audit entry to carry
    seen: list[str] = []
    real_swap = postgres_drop.swap

    def swap_then_look(*args: Any) -> None:
        real_swap(*args)
        # The swap ended the session of drop_db's lock: a migrate waiting for it may take it
        # now, and reads the history this way.
        seen.extend(_kinds(p))

    monkeypatch.setattr(postgres_drop, "swap", swap_then_look)

    dropped = monarch.drop_db(p.config(), "development")

    assert dropped.removed == ("public.monarch_lock", "public.monarch_migrations")
    assert seen == ["drop_db", "baseline"]  # the entry came with the empty database
    entries = monarch.list_history(p.config(), "development").entries
    assert [e.kind for e in entries] == seen  # and was not written a second time
    assert entries[0].command == "drop_db development"
    assert entries[0].summary == "dropped the database (2 tables)"
    assert p.tables() == ["monarch_events"]  # the data went; the trail stayed


@ON_POSTGRES
def test_a_postgres_drop_that_fails_before_the_swap_leaves_neither_emptiness_nor_entry(
    sql_project: SQLProject, monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = _a_applied(sql_project)
    before = monarch.list_history(p.config(), "development").entries
    tables = sorted(p.tables())
    inside: list[str] = []
    in_the_way: list[str] = []
    real_swap = postgres_drop.swap

    def swap_onto_a_taken_name(
        admin: Any, env: Environment, scratch: str, old: str, props: Any,
    ) -> None:
        engine = engine_for(env.with_database(scratch))
        try:
            inside.extend(e.kind for e in engine.history().events())
        finally:
            engine.close()
        # The name the old database moves to is taken: the server refuses the swap's rename.
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(old)))
        in_the_way.append(old)
        real_swap(admin, env, scratch, old, props)

    monkeypatch.setattr(postgres_drop, "swap", swap_onto_a_taken_name)
    with pytest.raises(MonarchError, match="already exists"):
        monarch.drop_db(p.config(), "development")
    monkeypatch.undo()

    assert inside == ["drop_db"]  # the entry was in the new database...
    after = monarch.list_history(p.config(), "development").entries
    assert after == before  # ...which never came: no entry, and A's record is still there
    assert sorted(p.tables()) == tables
    assert _states(p) == {A: "applied"}
    # The database in the way is a leftover: the next drop removes it, and is recorded.
    dropped = monarch.drop_db(p.config(), "development")
    assert dropped.recovered is not None and in_the_way[0] in dropped.recovered
    assert _kinds(p) == ["drop_db"]


def _drop_everything(p: AnyProject) -> None:
    if isinstance(p, Project):
        for collection in p.db.list_collection_names():
            p.db.drop_collection(collection)
        return
    with p.connect() as conn:
        for table in p.tables():
            conn.execute(f'DROP TABLE "{table}"')


def test_eight_processes_racing_baseline_and_migrate_have_exactly_one_outcome(
    any_project: AnyProject,
) -> None:
    p = any_project
    for name in (A, B, C):
        p.counting(name, extra="__import__('time').sleep(0.05)")
    outcomes = set()
    for repetition in range(2):
        _drop_everything(p)
        commands = [
            ("baseline", "development", "--to", B) if i % 2 else ("migrate", "development")
            for i in range(8)
        ]
        # SQLite's audit trail, beside the file, outlives the dropped tables: count new entries.
        seen = {(e.at, e.pid) for e in monarch.list_history(p.config(), "development").entries}
        processes = [p.spawn(*command, "--lock-timeout", "120") for command in commands]
        outputs = [process.communicate(timeout=180) for process in processes]
        for process, (_out, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, f"repetition {repetition}: {err}"
        runs = p.runs()
        assert set(runs.values()) == {1}, f"repetition {repetition}: something ran twice"
        baselines = [
            e for e in monarch.list_history(p.config(), "development").entries
            if e.kind == "baseline" and (e.at, e.pid) not in seen
        ]
        if baselines:
            # A baseline came first: it recorded A and B, and the first migrate ran only C.
            (event,) = baselines
            assert [c.subject for c in event.changes] == [A, B]
            assert runs == {C: 1}
            outcomes.add("baseline first")
        else:
            # A migrate came first: it ran everything; every baseline then had nothing to do.
            assert runs == {A: 1, B: 1, C: 1}
            outcomes.add("migrate first")
        assert _states(p) == {A: "applied", B: "applied", C: "applied"}
        migrated = [out for command, (out, _) in zip(commands, outputs, strict=True)
                    if command[0] == "migrate"]
        assert sum(out.count("applied ") for out in migrated) == len(runs)
    assert outcomes
