"""SIGKILL a real selective ``monarch restore --collection ...`` at moments spread over its
phases: after recovery the selected collections are exactly old or exactly new, and every
other collection of the target is untouched (the harness of test_kill_restore.py, with a
selection)."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database

from monarch import backup
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    Snapshot,
    TwoDbs,
    snapshot,
    two_dbs_fixture,
)
from tests.backups.test_kill_restore import NAMES, fill, kill_and_recover_in_turn, kill_seed

SELECTED = ("users", "events")
SELECT = ["--collection", "users", "--collection", "ev*"]


def bystanders(db: Database[Any]) -> None:
    """Collections of the target that no selective restore may touch; one shares the backup's
    unselected name (``only_in_v1``), one is the target's own."""
    db.only_in_v1.insert_many({"target's": i} for i in range(30))
    db.own.insert_many({"mine": i, "pad": "x" * 200} for i in range(500))
    db.own.create_index("mine", name="mine_1")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_selective_restore_killed_at_random_moments_leaves_the_rest_untouched(
    two_dbs: TwoDbs,
) -> None:
    config = two_dbs.config()
    fill(two_dbs.source, 1, NAMES["plain"])
    first = backup(config, "development").name
    selected = {first: {n: snapshot(two_dbs.source)[n] for n in SELECTED}}
    for name in two_dbs.source.list_collection_names():
        two_dbs.source.drop_collection(name)
    fill(two_dbs.source, 2, NAMES["plain"])
    second = backup(config, "development").name
    selected[second] = {n: snapshot(two_dbs.source)[n] for n in SELECTED}
    assert selected[first] != selected[second]

    bystanders(two_dbs.target)
    others = snapshot(two_dbs.target)
    expected = {name: {**others, **chosen} for name, chosen in selected.items()}

    def untouched(now: Snapshot, where: str) -> None:
        assert {n: v for n, v in now.items() if n not in SELECTED} == others, (
            f"{where}: a collection outside the selection changed"
        )

    kill_and_recover_in_turn(two_dbs, expected, kill_seed(20261202), extra=SELECT,
                             check=untouched)
