"""The SQLite engine on real files: opening errors, dump, restore and copy."""

from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path

import pytest

from monarch.engines.sqlite.files import try_flock, unlock
from monarch.errors import BackupError, ConnectionFailed, RestoreBusy
from monarch.history import APPLIED, Record
from tests.engines.conftest import new_engine
from tests.engines.sqlite_helpers import contents, fill, fill_other, journal_mode


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def dump_of(path: Path) -> bytes:
    out = io.BytesIO()
    engine = new_engine(url(path))
    try:
        result = engine.dump(out)  # type: ignore[attr-defined]
    finally:
        engine.close()
    assert result.bytes == len(out.getvalue())
    return out.getvalue()


def restore(path: Path, data: bytes) -> object:
    engine = new_engine(url(path))
    try:
        return engine.restore(io.BytesIO(data))  # type: ignore[attr-defined]
    finally:
        engine.close()


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
    assert result.dropped == ("legacy",)  # type: ignore[attr-defined]
    assert "orders" in result.tables and not result.created  # type: ignore[attr-defined]
    assert [p.name for p in (tmp_path / "target.db-monarch").iterdir()] == ["restore.lock"]


def test_restore_into_a_missing_file_creates_it(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    result = restore(target, dump_of(source))
    assert result.created  # type: ignore[attr-defined]
    assert contents(target) == contents(source)


def test_copy_makes_the_target_an_exact_copy(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source, wal=True)
    fill_other(target)
    engine = new_engine(url(source))
    try:
        result = engine.copy_to(new_engine(url(target)))  # type: ignore[attr-defined]
        with pytest.raises(BackupError, match="onto itself"):
            engine.copy_to(new_engine(url(source)))  # type: ignore[attr-defined]
    finally:
        engine.close()
    assert result.bytes is None and result.dropped == ("legacy",)
    assert contents(target) == contents(source)


def test_copy_into_another_engine_is_refused(tmp_path: Path) -> None:
    fill(tmp_path / "app.db")
    engine = new_engine(url(tmp_path / "app.db"))
    with pytest.raises(BackupError, match="into a mongo environment"):
        engine.copy_to(new_engine("mongodb://127.0.0.1:1/x"))  # type: ignore[attr-defined]


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
    assert "removed 2 file(s)" in str(result.recovered)  # type: ignore[attr-defined]
    assert [p.name for p in folder.iterdir()] == ["restore.lock"]
