"""The mutation engine (reproducible from (seed, case), aware of BSON's length fields) and the
runner (it catches every kind of crash)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import bson

from monarch.archive import ArchiveWriter, CollectionMeta
from tests.fuzz.mutate import Mutator, case_rng, length_fields
from tests.fuzz.runner import replay, run_campaign


def small_archive() -> bytes:
    out = io.BytesIO()
    writer = ArchiveWriter(out)
    writer.write_header([CollectionMeta.build("shop", "users")], "7.0.0", "test")
    writer.write_documents("shop", "users", bson.encode({"_id": 1, "name": "ann", "n": {"a": [1]}}))
    writer.end_collection("shop", "users")
    writer.close()
    return out.getvalue()


def test_the_same_seed_and_case_give_the_same_mutant() -> None:
    data = small_archive()
    mutator = Mutator(lambda d: length_fields(d, 4))
    first = [mutator.mutate(case_rng(7, case), data, [data]) for case in range(50)]
    again = [mutator.mutate(case_rng(7, case), data, [data]) for case in range(50)]

    assert first == again
    assert len(set(first)) > 40
    assert all(m != data for m in first[:10]) or sum(m != data for m in first) > 45


def test_length_fields_finds_every_document_and_string_length_of_an_archive() -> None:
    data = small_archive()
    fields = length_fields(data, 4)
    doc = bson.encode({"_id": 1, "name": "ann", "n": {"a": [1]}})
    at = data.index(doc)

    # The document, its string "ann", its embedded document and its array.
    string = data.index(b"\x04\x00\x00\x00ann")
    embedded = at + doc.index(b"\x03n\x00") + 3
    array = at + doc.index(b"\x04a\x00") + 3
    assert {at, string, embedded, array} <= set(fields)
    assert all(-1 <= struct.unpack_from("<i", data, f)[0] <= len(data) for f in fields)


def test_length_fields_of_a_real_mongodump_bson_file(fuzz_samples: Path) -> None:
    bson_file = next((fuzz_samples / "dump" / "mongodump").rglob("users.bson"))
    data = bson_file.read_bytes()

    fields = length_fields(data)
    assert fields[0] == 0
    assert len([f for f in fields if f in _document_starts(data)]) == 12  # the users


def _document_starts(data: bytes) -> set[int]:
    starts, pos = set(), 0
    while pos < len(data):
        starts.add(pos)
        pos += struct.unpack_from("<i", data, pos)[0]
    return starts


def test_the_runner_reports_every_kind_of_crash_and_goes_on(
    fuzz_samples: Path, tmp_path: Path
) -> None:
    names = ["selftest-exception", "selftest-hang", "selftest-allocate", "selftest-grow",
             "selftest-die", "sql"]
    report = run_campaign(fuzz_samples, names, seed=1, cases=6, seconds=120,
                          crashes=tmp_path / "crashes", case_timeout=3.0, memory_mb=64)

    kinds = sorted((f.target, f.kind) for f in report.findings)
    assert kinds == [("selftest-allocate", "memory"), ("selftest-die", "died"),
                     ("selftest-exception", "exception"), ("selftest-grow", "memory"),
                     ("selftest-hang", "hang")], report.summary()
    assert report.total == 6  # the run went on after each, the killed child's too
    died = next(f for f in report.findings if f.kind == "died")
    assert (Path(died.saved) / "case.json").is_file()
    assert report.outcomes["sql"]["crash"] == 0 and report.cases["sql"] == 1
    saved = Path(next(f.saved for f in report.findings if f.kind == "exception"))
    assert "ValueError" in (saved / "error.txt").read_text()
    assert "ValueError" in replay(saved)[1]
