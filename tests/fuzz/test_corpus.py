"""Inputs that once crashed a parser (found by the fuzzer) are now refused with a monarch error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.runner import replay

CORPUS = Path(__file__).parent / "corpus"
ENTRIES = sorted(p for p in CORPUS.iterdir() if (p / "case.json").is_file())


def test_the_corpus_has_entries() -> None:
    assert len(ENTRIES) >= 5


@pytest.mark.parametrize("entry", ENTRIES, ids=[p.name for p in ENTRIES])
def test_an_input_that_once_crashed_is_refused_with_a_monarch_error(entry: Path) -> None:
    outcome, crash = replay(entry)

    assert crash == ""
    assert outcome != "accepted"  # a monarch error's name
