"""The bounded fuzz run: every parser of outside input, fed a few hundred mutants of real samples
each, ends every case in a clean read or a monarch error: never another exception, a hang, or
memory beyond its bound. ``scripts/fuzz`` runs the same cases for as long as it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.runner import run_campaign
from tests.fuzz.targets import enabled_targets

SEED = 20260101
CASES = 250
SECONDS = 25.0
"""Per target: stop early on a slow machine rather than hold up the test command."""
AT_LEAST = 60


@pytest.mark.parametrize("target", [t.name for t in enabled_targets()])
def test_every_mutant_is_read_whole_or_refused_with_a_monarch_error(
    target: str, fuzz_samples: Path, tmp_path: Path
) -> None:
    report = run_campaign(fuzz_samples, [target], seed=SEED, cases=CASES, seconds=SECONDS,
                          crashes=tmp_path / "crashes")

    assert report.findings == [], report.summary()
    assert report.total >= AT_LEAST, report.summary()
    outcomes = report.outcomes[target]
    assert sum(outcomes.values()) == report.total
    # The mutations do damage: most cases are refused, and not all for the same reason.
    refused = report.total - outcomes["accepted"]
    assert refused > report.total // 4, report.summary()
