"""Collection names with dots and other odd characters, on both sides of a restore's swap.

The test server refuses to rename any collection whose name has a dot (GridFS's ``fs.files``),
so these names exercise the swap's other way of moving a collection (a copy), the probe that
proves every move works before the target is touched, and recovery from each state a swap of
such names can be left in.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from pymongo.database import Database

from monarch import backup, copy_db, list_backups, restore
from monarch.api.backups import recover
from monarch.archive import CollectionMeta
from monarch.engines.mongo._moves import move, probe, scratch_name
from monarch.engines.mongo.journal import ASIDE_PREFIX, JOURNAL, STAGING_PREFIX, derived_name
from monarch.errors import BackupError
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    data_collections,
    leftovers,
    snapshot,
    two_dbs_fixture,
    write_archive,
)
from tests.backups.test_kill_restore import start_and_wait_for_journal
from tests.backups.test_restore_recovery import contents, dead_pid

TOKEN = "0ddba11a"
LONG = "long." + "n" * 150 + ".name"
ODD = "we ird-näme!#%&*(),;'[]{}@"  # not '"': FerretDB's SQLite metadata breaks on it
OLD = {"fs.files": [{"_id": 1, "v": "old file"}], "only.old": [{"_id": 2}], "plain": [{"_id": 3}]}
NEW = {"fs.files": [{"_id": 1, "v": "new file"}, {"_id": 5}], "a.b": [{"_id": 4}],
       "plain": [{"_id": 3, "v": "new"}], ODD: [{"_id": 6}]}


def fill_odd(db: Database[Any], version: int) -> None:
    """GridFS's two collections, dotted, long and odd names, with indexes."""
    db["fs.files"].insert_many({"_id": i, "filename": f"f{i}.txt", "v": version}
                               for i in range(50))
    db["fs.files"].create_index("filename", name="filename_1")
    db["fs.chunks"].insert_many({"files_id": i % 50, "n": i // 50, "data": b"x" * (100 + i)}
                                for i in range(200))
    db["fs.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True, name="files_id_1_n_1")
    db["a.b"].insert_one({"_id": "a.b", "v": version})
    db[LONG].insert_many({"_id": i} for i in range(version + 2))
    db[ODD].insert_one({"_id": ODD})
    db[f"only.in.v{version}"].insert_one({"_id": version})


def test_a_restore_with_dotted_and_odd_names_on_both_sides_gives_exactly_the_backup(
    two_dbs: TwoDbs,
) -> None:
    config = two_dbs.config()
    fill_odd(two_dbs.source, 2)
    fill_odd(two_dbs.target, 1)
    name = backup(config, "development").name

    result = restore(config, name, "staging")

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    assert leftovers(two_dbs.target) == []
    assert result.dropped == ("only.in.v1",)


def test_copy_db_with_dotted_and_odd_names_on_both_sides_gives_exactly_the_source(
    two_dbs: TwoDbs,
) -> None:
    fill_odd(two_dbs.source, 3)
    fill_odd(two_dbs.target, 1)

    result = copy_db(two_dbs.config(), "development", "staging")

    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    assert leftovers(two_dbs.target) == []
    assert result.dropped == ("only.in.v1",)


def test_a_move_the_server_refuses_both_ways_is_refused_up_front_naming_the_collection(
    two_dbs: TwoDbs,
) -> None:
    db = two_dbs.target
    db.plain.insert_one({"_id": 1})
    before = contents(db)

    with pytest.raises(BackupError, match=r"refuses to move collection .*'bad\$name'"):
        probe(db, TOKEN, [("plain", "fine.name"), (f"{STAGING_PREFIX}{TOKEN}_x", "bad$name")])

    assert contents(db) == before


def test_a_restore_of_a_name_the_server_cannot_move_is_refused_before_anything_is_loaded(
    two_dbs: TwoDbs,
) -> None:
    # FerretDB's own catalogue cannot hold a '"' in a name: the probe finds out first.
    if not two_dbs.server.is_ferretdb:
        pytest.skip("only FerretDB refuses '\"' in collection names")
    fill_odd(two_dbs.target, 1)
    before = snapshot(two_dbs.target)
    path = write_archive(two_dbs.root / "quoted.archive", [
        (CollectionMeta.build("shop", "plain"), [bson.encode({"_id": 1})]),
        (CollectionMeta.build("shop", 'say "hi"'), [bson.encode({"_id": 2})]),
    ])

    with pytest.raises(BackupError, match="refuses to move collection") as caught:
        restore(two_dbs.config(), str(path), "staging")

    assert "say \"hi\"" in caught.value.message and "nothing was done" in caught.value.message
    assert snapshot(two_dbs.target) == before
    assert leftovers(two_dbs.target) == []


def test_scratch_names_have_the_shape_of_the_real_ones() -> None:
    for real in ("fs.files", "a.b", LONG, ODD, "ü" * 100 + ".x", "p"):
        scratch = scratch_name(TOKEN, "s", real)
        assert scratch.startswith(f"monarch_probe_{TOKEN}_s_")
        assert ("." in scratch) == ("." in real)
        if len(real.encode()) > 30:
            assert len(scratch.encode()) == len(real.encode())


def journal_of(db: Database[Any], state: str, **extra: Any) -> None:
    """The journal of a restore that died long ago, as it writes it (see journal.py)."""
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    plan = {"old_views": [], "views": [], "old_view_defs": [],
            "aside": [{"from": n, "to": aside(db, n)} for n in OLD],
            "placing": [{"from": staging(db, n), "to": n} for n in NEW]}
    db[JOURNAL].insert_one({"_id": "restore", "token": TOKEN, "state": state, "host": "here",
                            "pid": dead_pid(), "command": "monarch restore (killed)",
                            "started": long_ago, "heartbeat": long_ago, **plan, **extra})


def aside(db: Database[Any], name: str) -> str:
    return derived_name(ASIDE_PREFIX, TOKEN, name, db.name)


def staging(db: Database[Any], name: str) -> str:
    return derived_name(STAGING_PREFIX, TOKEN, name, db.name)


def loaded(db: Database[Any]) -> None:
    """OLD in place, NEW in staging: a restore that had loaded everything."""
    for name, docs in OLD.items():
        db[name].insert_many(docs)
    for name, docs in NEW.items():
        db[staging(db, name)].insert_many(docs)


def sorted_docs(data: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {k: sorted(v, key=lambda d: d["_id"]) for k, v in sorted(data.items())}


def half_copy(db: Database[Any], source: str, target: str) -> None:
    """What a copy interrupted halfway leaves: the source whole, the target partial."""
    db.create_collection(target)
    db[target].insert_many(list(db[source].find())[:1])


def swap_writes(db: Database[Any]) -> list[Any]:
    """Every write a swap from OLD to NEW makes, in order, each move possibly half done."""
    steps: list[Any] = []
    for name in OLD:
        steps.append(lambda n=name: half_copy(db, n, aside(db, n)))
        steps.append(lambda n=name: move(db, n, aside(db, n)))
    steps.append(lambda: db[JOURNAL].update_one({}, {"$set": {"state": "placing"}}))
    for name in NEW:
        steps.append(lambda n=name: half_copy(db, staging(db, n), n))
        steps.append(lambda n=name: move(db, staging(db, n), n))
    steps.append(lambda: db[JOURNAL].update_one({}, {"$set": {"state": "dropping"}}))
    steps += [lambda n=name: db.drop_collection(aside(db, n)) for name in OLD]
    return steps


STEPS = 2 * len(OLD) + 1 + 2 * len(NEW) + 1 + len(OLD)


@pytest.mark.parametrize("done", range(STEPS + 1))
def test_a_swap_of_dotted_names_stopped_after_any_write_is_finished_by_recovery(
    two_dbs: TwoDbs, done: int
) -> None:
    db = two_dbs.target
    loaded(db)
    journal_of(db, "aside")
    steps = swap_writes(db)
    assert len(steps) == STEPS
    for step in steps[:done]:
        step()

    said = recover(two_dbs.config(), "staging")

    assert said is not None and "the swap was finished" in said
    assert contents(db) == sorted_docs(NEW)
    assert leftovers(db) == []


def test_the_state_a_failed_swap_of_dotted_names_used_to_leave_is_finished_by_recovery(
    two_dbs: TwoDbs,
) -> None:
    # What 1.0.0 before this fix left: plain names renamed aside, then "Invalid namespace" on
    # the first dotted one, and every later restore, copy_db and recover failing the same way.
    db = two_dbs.target
    loaded(db)
    journal_of(db, "aside")
    db.plain.rename(aside(db, "plain"))

    said = recover(two_dbs.config(), "staging")

    assert said is not None and "the swap was finished" in said
    assert contents(db) == sorted_docs(NEW)
    assert leftovers(db) == []


def test_a_swap_whose_staging_vanished_is_undone_and_the_old_contents_come_back(
    two_dbs: TwoDbs,
) -> None:
    db = two_dbs.target
    loaded(db)
    journal_of(db, "aside")
    steps = swap_writes(db)
    for step in steps[:2 * len(OLD) + 1 + 2]:  # all aside, placing, fs.files placed
        step()
    db.drop_collection(staging(db, "a.b"))

    said = recover(two_dbs.config(), "staging")

    assert said is not None and "undone" in said and "'a.b'" in said
    assert contents(db) == sorted_docs(OLD)
    assert leftovers(db) == []


def test_an_undo_stopped_halfway_is_finished_by_the_next_recovery(two_dbs: TwoDbs) -> None:
    db = two_dbs.target
    loaded(db)
    journal_of(db, "undoing", placed=list(NEW), why="a staging collection vanished")
    for name in OLD:
        move(db, name, aside(db, name))
    for name in NEW:  # all placed, as if the last step had failed
        move(db, staging(db, name), name)
    move(db, aside(db, "plain"), "plain")  # the undo had moved one back already

    said = recover(two_dbs.config(), "staging")

    assert said is not None and "old contents" in said
    assert contents(db) == sorted_docs(OLD)
    assert leftovers(db) == []


def test_a_journal_whose_collections_are_all_gone_is_finished_without_error(
    two_dbs: TwoDbs,
) -> None:
    db = two_dbs.target
    journal_of(db, "dropping")

    said = recover(two_dbs.config(), "staging")

    assert said is not None and "finished" in said
    assert data_collections(db) == []


def test_a_journal_monarch_did_not_write_is_refused_with_a_hint(two_dbs: TwoDbs) -> None:
    db = two_dbs.target
    db[JOURNAL].insert_one({"_id": "restore", "state": "sideways", "pid": 1, "host": "x"})

    with pytest.raises(BackupError, match="not one monarch wrote") as caught:
        recover(two_dbs.config(), "staging")

    assert caught.value.hint is not None and JOURNAL in caught.value.hint


def test_scratch_collections_of_an_interrupted_probe_are_removed_by_recovery(
    two_dbs: TwoDbs,
) -> None:
    db = two_dbs.target
    db.plain.insert_one({"_id": 1})
    db.create_collection(scratch_name("feedf00d", "s", "fs.files"))
    db.create_collection(scratch_name("feedf00d", "t", "plain"))

    recover(two_dbs.config(), "staging")  # no journal: only leftovers to remove

    assert data_collections(db) == ["plain"]


def test_a_backup_in_the_middle_of_a_swap_is_refused_and_points_at_recover(
    two_dbs: TwoDbs,
) -> None:
    db = two_dbs.target
    loaded(db)
    journal_of(db, "aside")
    for step in swap_writes(db)[:3]:  # fs.files and only.old set aside
        step()
    config = two_dbs.config()

    with pytest.raises(BackupError, match="middle of a restore's swap") as caught:
        backup(config, "staging")
    assert caught.value.hint is not None and "monarch recover staging" in caught.value.hint
    assert list_backups(config) == []
    with pytest.raises(BackupError, match="middle of a restore's swap"):
        copy_db(config, "staging", "development")
    assert data_collections(two_dbs.source) == []

    recover(config, "staging")
    name = backup(config, "staging").name
    restore(config, name, "development")
    assert contents(two_dbs.source) == sorted_docs(NEW)


def test_ctrl_c_inside_the_swap_finishes_it_before_stopping(two_dbs: TwoDbs) -> None:
    # Copying dotted names makes the swap last long enough to be hit by watching the journal.
    config = two_dbs.config()
    fill_odd(two_dbs.source, 2)
    two_dbs.source["fs.chunks"].insert_many({"files_id": -1, "n": i, "data": b"y" * 2000}
                                            for i in range(3000))
    fill_odd(two_dbs.target, 1)
    name = backup(config, "development").name
    process, _ = start_and_wait_for_journal(two_dbs, name)
    journal = two_dbs.target[JOURNAL]
    while process.poll() is None and journal.find_one({"state": "placing"}) is None:
        time.sleep(0.001)
    process.send_signal(signal.SIGINT)

    # Stopped by the interrupt while placing (an interrupt before the swap leaves the old data).
    assert process.wait(timeout=120) != 0
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    assert leftovers(two_dbs.target) == []
