"""The SQLite engine on real files: opening errors, dump, restore and copy (dump piped into
restore)."""

from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from monarch.engines.base import RestoreStats, StreamCheck
from monarch.engines.sqlite.files import try_flock, unlock
from monarch.errors import BackupError, ConnectionFailed, RestoreBusy, UsageError
from monarch.history import APPLIED, Record
from monarch.progress import Item
from tests.engines.conftest import new_engine
from tests.engines.sqlite_helpers import contents, fill, fill_other, journal_mode
from tests.engines.stream_helpers import Counter, copy_through_pipe


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def dump_of(path: Path) -> bytes:
    out = io.BytesIO()
    engine = new_engine(url(path))
    progress = Counter()
    try:
        engine.dump(out, progress=progress)
    finally:
        engine.close()
    assert progress.bytes.get(str(path), 0) == len(out.getvalue())
    return out.getvalue()


def restore(path: Path, data: bytes, **options: Any) -> RestoreStats:
    engine = new_engine(url(path))
    try:
        return engine.restore(io.BytesIO(data), **options)
    finally:
        engine.close()


def tables(result: RestoreStats) -> tuple[str, ...]:
    return tuple(c.name for c in result.collections)


# -- opening


def test_a_missing_folder_is_reported_with_how_to_fix_it(tmp_path: Path) -> None:
    engine = new_engine(url(tmp_path / "nope" / "app.db"))
    with pytest.raises(ConnectionFailed, match=r"its folder .*nope does not exist") as caught:
        engine.server_info()
    assert "mkdir -p" in str(caught.value.hint)


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.write_text("just some text, " * 100)
    with pytest.raises(ConnectionFailed, match="not a valid SQLite database"):
        new_engine(url(path)).history().records()


def test_a_folder_in_place_of_the_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "app.db").mkdir()
    with pytest.raises(ConnectionFailed, match="it is a folder"):
        new_engine(url(tmp_path / "app.db")).server_info()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file: permissions cannot deny it")
def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    fill(path)
    path.chmod(0)
    with pytest.raises(ConnectionFailed, match="permission denied"):
        new_engine(url(path)).server_info()


def test_reading_history_and_lock_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    engine = new_engine(url(tmp_path / "app.db"))
    assert engine.history().records() == {}
    assert engine.migration_lock().holder() is None
    assert list(tmp_path.iterdir()) == []


def test_the_first_write_creates_the_database(tmp_path: Path) -> None:
    engine = new_engine(url(tmp_path / "app.db"))
    engine.history().save(Record(name="m1", state=APPLIED, checksum="a"))
    engine.close()
    assert list(new_engine(url(tmp_path / "app.db")).history().records()) == ["m1"]


# -- dump, restore, copy


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_restore_gives_the_target_exactly_the_backup(tmp_path: Path, wal: bool) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source, wal=wal)
    fill_other(target)
    result = restore(target, dump_of(source))
    assert contents(target) == contents(source)
    assert journal_mode(target) == journal_mode(source)
    # "dropped" names what the target held before: it existed, and was not created.
    assert result.dropped == ("legacy",)
    assert "orders" in tables(result)
    assert [p.name for p in (tmp_path / "target.db-monarch").iterdir()] == ["restore.lock"]


def test_restore_into_a_missing_file_creates_it(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    assert not target.exists()
    result = restore(target, dump_of(source))
    assert target.exists() and result.dropped == ()
    assert contents(target) == contents(source)


def test_copy_makes_the_target_an_exact_copy(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source, wal=True)
    fill_other(target)
    engine = new_engine(url(source))
    try:
        result = copy_through_pipe(engine, new_engine(url(target)))
        # copy_db refuses a database onto itself by asking this (tests/backups).
        (tmp_path / "link.db").symlink_to(source)
        assert engine.same_database(new_engine(url(tmp_path / "link.db")))
        assert not engine.same_database(new_engine(url(target)))
    finally:
        engine.close()
    assert result.dropped == ("legacy",)
    assert contents(target) == contents(source)


def test_a_copy_from_another_engine_is_refused_and_the_target_stays_as_it_was(
    tmp_path: Path,
) -> None:
    # copy_db refuses two engines before any byte moves (tests/backups); below it, the target's
    # restore refuses a stream that is not its own format, and leaves the target as it was.
    target = tmp_path / "app.db"
    fill_other(target)
    before = contents(target)

    class Other:
        """A source engine of another format: what it dumps is no SQLite database."""

        def dump(self, out: Any, **options: Any) -> None:
            out.write(b"PGDMP" + b"\x00" * 4096)

    with pytest.raises(BackupError, match="not a SQLite database"):
        copy_through_pipe(Other(), new_engine(url(target)))  # type: ignore[arg-type]
    assert contents(target) == before
    assert [p.name for p in (tmp_path / "app.db-monarch").iterdir()] == ["restore.lock"]


def test_dump_of_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="does not exist"):
        dump_of(tmp_path / "app.db")


def corrupt_pages(data: bytes) -> bytes:
    """A file with SQLite's header whose b-tree pages are overwritten."""
    damaged = bytearray(data)
    page = 4096
    for start in range(page * 2, len(damaged) - page, page * 3):
        damaged[start : start + 64] = b"\xff" * 64
    return bytes(damaged)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"not a database" * 500, id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(corrupt_pages, id="corrupt-pages"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_bad_backup_is_refused_and_the_target_stays_as_it_was(
    tmp_path: Path, damage: object
) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source, rows=2000)
    fill_other(target)
    before = contents(target)
    with pytest.raises(BackupError):
        restore(target, damage(dump_of(source)))  # type: ignore[operator]
    assert contents(target) == before
    assert [p.name for p in (tmp_path / "target.db-monarch").iterdir()] == ["restore.lock"]


def test_restore_is_refused_while_another_connection_has_the_wal_database_open(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    fill(target, wal=True, tag="old")
    before = contents(target)
    app = sqlite3.connect(target)
    try:
        app.execute("SELECT count(*) FROM customers").fetchone()
        with pytest.raises(RestoreBusy, match="open in other connections"):
            restore(target, dump_of(source))
    finally:
        app.close()
    assert contents(target) == before
    assert journal_mode(target) == "wal"


def test_a_second_restore_at_the_same_time_is_refused(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    fill_other(target)
    (tmp_path / "target.db-monarch").mkdir()
    fd = try_flock(tmp_path / "target.db-monarch" / "restore.lock")
    assert fd is not None
    try:
        with pytest.raises(RestoreBusy, match="another restore"):
            restore(target, dump_of(source))
    finally:
        unlock(fd)
    assert "legacy" in contents(target)


def test_files_a_killed_restore_left_are_removed_by_the_next(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    folder = tmp_path / "target.db-monarch"
    folder.mkdir()
    (folder / "restore-0badc0de.sqlite").write_bytes(b"half a file")
    (folder / "restore-0badc0de.sqlite-journal").write_bytes(b"x")
    result = restore(target, dump_of(source))
    assert "removed 2 file(s)" in str(result.recovered)
    assert [p.name for p in folder.iterdir()] == ["restore.lock"]


# -- the Engine protocol's details


def test_a_dump_reports_its_tables_rows_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    fill(path, rows=120)
    engine = new_engine(url(path))
    progress = Counter()
    out = io.BytesIO()
    result = engine.dump(out, progress=progress, action="copy_db")
    assert out.getvalue().startswith(b"SQLite format 3\x00")
    assert result.database == str(path) and result.server == engine.server_info()
    assert result.tool_version == f"sqlite3 {sqlite3.sqlite_version}"
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    conn.close()
    customers = {c.name: c for c in result.collections}["customers"]
    assert (customers.type, customers.documents, customers.crc64) == ("table", rows, 0)
    assert [c.name for c in result.collections] == sorted(c.name for c in result.collections)
    assert progress.started == [("copy_db", [Item(str(path), None, None, unit="database")])]
    assert progress.bytes == {str(path): len(out.getvalue())}
    assert progress.finished_items == [str(path)] and not progress.finished


def test_a_dump_refuses_a_query_set_and_a_restore_anything_but_a_byte_stream(
    tmp_path: Path,
) -> None:
    fill(tmp_path / "app.db")
    engine = new_engine(url(tmp_path / "app.db"))
    with pytest.raises(UsageError, match="query set"):
        engine.dump(io.BytesIO(), query_set=object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="byte stream"):
        engine.restore([b"SQLite format 3"])  # type: ignore[arg-type]
    assert "customers" in contents(tmp_path / "app.db")


def test_restore_reports_the_bytes_it_reads(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    data = dump_of(source)
    progress = Counter()
    result = restore(target, data, progress=progress)
    assert progress.started == [("restore", [Item(str(target), None, None, unit="database")])]
    assert progress.bytes == {str(target): len(data)}
    assert progress.finished_items == [str(target)] and not progress.finished
    assert result.database == str(target)
    assert {c.type for c in result.collections} == {"table"}


def test_before_swap_runs_once_the_file_is_checked_and_raising_there_changes_nothing(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    fill_other(target)
    before = contents(target)
    folder = tmp_path / "target.db-monarch"
    staged: list[list[str]] = []

    def refuse() -> None:
        staged.append(sorted(p.name for p in folder.iterdir() if p.name != "restore.lock"))
        raise RuntimeError("not now")

    with pytest.raises(RuntimeError, match="not now"):
        restore(target, dump_of(source), before_swap=refuse)
    assert len(staged) == 1 and len(staged[0]) == 1  # called once, with the file staged
    assert contents(target) == before
    assert [p.name for p in folder.iterdir()] == ["restore.lock"]
    called: list[bool] = []
    restore(target, dump_of(source), before_swap=lambda: called.append(True))
    assert called == [True] and contents(target) == contents(source)


def test_check_runs_sqlites_integrity_check_on_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    fill(path, rows=2000)
    data = dump_of(path)
    engine = new_engine(url(path))
    assert engine.check(io.BytesIO(data)) == StreamCheck((), None, "SQLite's integrity check")
    damaged = engine.check(io.BytesIO(corrupt_pages(data)))
    assert damaged.problems and damaged.checked == "SQLite's integrity check"
    garbage = engine.check(io.BytesIO(b"not a database" * 10))
    assert len(garbage.problems) == 1
    assert garbage.problems[0].startswith("not a SQLite database (it starts with")
