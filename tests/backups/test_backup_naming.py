"""Backup names, store keys, and the manifest's JSON form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monarch.backups.manifest import ArchiveEntry, CollectionEntry, Manifest
from monarch.backups.naming import (
    archive_key,
    check_label,
    make_name,
    manifest_key,
    parse_name,
    split_key,
)
from monarch.errors import ManifestError, UsageError

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}[A-Za-z0-9_-]", fullmatch=True)


def test_names_are_environment_utc_stamp_and_label() -> None:
    assert make_name("production", WHEN) == "production-20260102T030405Z"
    assert make_name("pre-prod", WHEN, "v1.2") == "pre-prod-20260102T030405Z-v1.2"
    eastern = WHEN.astimezone(timezone(timedelta(hours=-5)))
    assert make_name("x", eastern) == "x-20260102T030405Z"


@given(env=parts, label=st.none() | parts, seconds=st.integers(0, 2**31))
def test_names_parse_back_into_their_parts(env: str, label: str | None, seconds: int) -> None:
    created = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)

    parsed = parse_name(make_name(env, created, label))

    assert parsed is not None
    assert (parsed.environment, parsed.created, parsed.label) == (env, created, label)


@given(env=parts, label=st.none() | parts)
def test_keys_map_back_to_their_backup(env: str, label: str | None) -> None:
    name = make_name(env, WHEN, label)

    assert split_key(manifest_key(name)) == (name, "manifest")
    for method in ("none", "gzip", "zstd"):
        assert split_key(archive_key(name, method)) == (name, "archive")


def test_keys_of_other_files_are_not_backups() -> None:
    assert split_key("notes.txt") is None
    assert split_key("dump.archive") is None
    assert split_key("production-2026.manifest.json") is None


def test_names_sort_by_environment_then_time() -> None:
    names = [make_name("prod", WHEN + timedelta(seconds=s)) for s in (30, 0, 3600, 5)]

    assert sorted(names) == [make_name("prod", WHEN + timedelta(seconds=s))
                             for s in (0, 5, 30, 3600)]


@pytest.mark.parametrize("label", ["ok", "pre-migrate", "v1.2_rc", "A" * 64])
def test_good_labels(label: str) -> None:
    assert check_label(label) == label


@pytest.mark.parametrize("label", ["", ".hidden", "a b", "a/b", "é", "x" * 65, "end."])
def test_bad_labels(label: str) -> None:
    with pytest.raises(UsageError):
        check_label(label)


def manifest() -> Manifest:
    return Manifest(
        name="prod-20260102T030405Z", monarch_version="1.0", environment="prod", engine="mongo",
        database="shop", source_host="db1:27017,db2:27017", server_version="7.0.2",
        started_at=WHEN, finished_at=WHEN + timedelta(seconds=3.5), label=None,
        query_set="anon",
        archive=ArchiveEntry("prod-20260102T030405Z.archive.zst", "zstd", 10, "ab" * 32, 99),
        collections=(
            CollectionEntry("users", "collection", 3, 300, 2**64 - 1,
                            ({"v": 2, "key": {"_id": 1}, "name": "_id_"},), {"capped": True}),
        ),
    )


def test_manifest_round_trips_through_json() -> None:
    original = manifest()

    again = Manifest.from_json(original.to_json(), "m")

    assert again == original
    assert '"crc64": "ffffffffffffffff"' in original.to_json()
    assert again.duration == 3.5 and again.documents == 3 and again.data_bytes == 300


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "is not a monarch backup manifest"),
        ('{"format": "other"}', "is not a monarch backup manifest"),
        ("{", "is not valid JSON"),
        ('{"format": "monarch-backup", "format_version": 1}', "is malformed"),
    ],
)
def test_malformed_manifests_are_refused(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(text, "m")


def test_manifest_with_negative_counts_is_refused() -> None:
    text = manifest().to_json().replace('"documents": 3', '"documents": -3')

    with pytest.raises(ManifestError, match="collection entry is malformed"):
        Manifest.from_json(text, "m")
