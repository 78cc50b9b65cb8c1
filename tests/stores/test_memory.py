"""What only the in-memory store does: sharing by name within a process, and forgetting."""

from __future__ import annotations

import pytest

from monarch.config import StoreConfig
from monarch.errors import StoreError
from monarch.stores import open_store
from monarch.stores.memory import MemoryStore


def memory(name: str) -> MemoryStore:
    store = open_store(StoreConfig(f"memory://{name}"))
    assert isinstance(store, MemoryStore)
    return store


@pytest.fixture(autouse=True)
def _forget() -> None:
    MemoryStore.reset("left")
    MemoryStore.reset("right")


def test_stores_of_one_name_share_objects_and_other_names_do_not() -> None:
    with memory("left").writer("k") as upload:
        upload.write(b"data")
    assert [o.key for o in memory("left").list()] == ["k"]
    assert list(memory("right").list()) == []


def test_reset_forgets_the_objects_of_a_name() -> None:
    with memory("left").writer("k") as upload:
        upload.write(b"data")
    MemoryStore.reset("left")
    assert list(memory("left").list()) == []


def test_an_upload_removed_by_cleanup_cannot_be_committed() -> None:
    store = memory("left")
    upload = store.writer("k")
    upload.write(b"data")
    assert store.pending() == 1
    assert store.cleanup(older_than=0) == 1
    with pytest.raises(StoreError, match="removed by cleanup"):
        upload.commit()
    assert list(store.list()) == []


def test_a_url_without_a_name_is_refused() -> None:
    with pytest.raises(StoreError, match="memory://name"):
        MemoryStore(StoreConfig("memory://"))
