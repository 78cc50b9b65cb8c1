"""SIGKILL a real selective ``monarch restore --collection ...`` at random moments: after
recovery the selected collections are exactly old or exactly new, and every other collection of
the target is untouched (the harness of test_kill_restore.py, with a selection)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from pymongo.database import Database

from monarch import backup
from monarch.api.backups import recover
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    leftovers,
    snapshot,
    two_dbs_fixture,
)
from tests.backups.test_kill_restore import (
    NAMES,
    calibrate,
    fill,
    kill_restore_at_a_moment,
)

ITERATIONS = 12
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
    whole, swap_from, swap_to = calibrate(two_dbs, first, SELECT)
    expected = {name: {**others, **chosen} for name, chosen in selected.items()}
    assert snapshot(two_dbs.target) == expected[first]

    current = first
    rng = random.Random(20261202)
    outcomes: Counter[str] = Counter()
    for iteration in range(ITERATIONS):
        wanted = second if current == first else first
        code, delay = kill_restore_at_a_moment(two_dbs, wanted, iteration, rng,
                                               (whole, swap_from, swap_to), extra=SELECT)

        said = recover(config, "staging")

        now = snapshot(two_dbs.target)
        assert leftovers(two_dbs.target) == [], f"iteration {iteration}: leftovers"
        assert {n: v for n, v in now.items() if n not in SELECTED} == others, (
            f"iteration {iteration}: a collection outside the selection changed ({said})"
        )
        if now == expected[wanted]:
            current = wanted
            outcomes["new" if code != 0 else "finished before the kill"] += 1
        else:
            assert now == expected[current], (
                f"iteration {iteration}: after a kill at {delay:.2f}s and recovery ({said}), "
                "the selected collections are neither old nor new"
            )
            outcomes["old"] += 1
    print(f"\nselective restore of {whole:.2f}s killed {ITERATIONS} times: {dict(outcomes)}")
    assert sum(outcomes.values()) == ITERATIONS
