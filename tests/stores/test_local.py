"""What only the local folder store does: temporary files, modes, and file-system errors."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monarch.config import StoreConfig
from monarch.errors import StoreError
from monarch.stores import open_store
from monarch.stores.local import TEMP_PREFIX, LocalStore


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def local(folder: Path) -> LocalStore:
    store = open_store(StoreConfig(f"file://{folder}"))
    assert isinstance(store, LocalStore)
    return store


def test_a_missing_folder_lists_nothing_and_is_created_on_first_write(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet"
    store = local(folder)
    assert list(store.list()) == []
    assert store.cleanup(older_than=0) == 0
    assert not folder.exists()
    with store.writer("a/b.archive") as upload:
        upload.write(b"x")
    assert (folder / "a" / "b.archive").read_bytes() == b"x"


def test_objects_are_private_to_their_owner(tmp_path: Path, umask: None) -> None:
    """Backups hold data: files are 0600 and folders monarch creates are 0700."""
    store = local(tmp_path / "backups")
    with store.writer("nested/k") as upload:
        upload.write(b"secret rows")
    assert stat.S_IMODE((tmp_path / "backups" / "nested" / "k").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "backups" / "nested").stat().st_mode) == 0o700


def test_bytes_go_to_a_hidden_temporary_file_next_to_the_object(tmp_path: Path) -> None:
    store = local(tmp_path)
    upload = store.writer("k")
    upload.write(b"partial")
    (temp,) = tmp_path.iterdir()
    assert temp.name.startswith(f"{TEMP_PREFIX}k-")
    assert list(store.list()) == []
    upload.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_cleanup_removes_only_temporary_files_older_than_asked(tmp_path: Path) -> None:
    store = local(tmp_path)
    old = tmp_path / f"{TEMP_PREFIX}old.archive-abc"
    fresh = tmp_path / f"{TEMP_PREFIX}fresh.archive-def"
    other_dotfile = tmp_path / ".keep"
    for path in (old, fresh, other_dotfile):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(other_dotfile, (two_hours_ago, two_hours_ago))
    assert store.cleanup(older_than=3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other_dotfile.name])


def test_a_file_where_the_folder_should_be_is_named(tmp_path: Path) -> None:
    (tmp_path / "backups").write_text("not a folder")
    store = local(tmp_path / "backups" / "inner")
    with pytest.raises(StoreError, match=f"backup folder {tmp_path}/backups/inner") as caught:
        store.writer("k")
    assert caught.value.hint is not None and "is a file" in caught.value.hint
    with pytest.raises(StoreError, match="backup folder"):
        list(local(tmp_path / "backups").list())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_folder_monarch_may_not_write_is_named_with_what_to_check(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(StoreError, match=f"cannot .* in backup folder {folder}") as caught:
            local(folder).writer("k")
        assert caught.value.hint is not None and "may write to" in caught.value.hint
    finally:
        folder.chmod(0o700)


def test_a_relative_or_foreign_url_is_refused() -> None:
    with pytest.raises(StoreError, match="absolute file:// URL"):
        LocalStore(StoreConfig("file://relative/folder"))


def test_options_meant_for_other_stores_are_ignored(tmp_path: Path) -> None:
    store = open_store(StoreConfig(f"file://{tmp_path}", {"part_size": "8MiB", "region": "x"}))
    assert store.display_url == f"file://{tmp_path}"
