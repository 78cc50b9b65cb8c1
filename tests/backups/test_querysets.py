"""Query sets: Python files in querysets/ that narrow and transform what a backup dumps."""

from __future__ import annotations

import textwrap

import pytest

from monarch import backup, generate_query_set
from monarch.backups.querysets import load_query_set, query_set_from
from monarch.errors import BackupError, QuerySetError, UsageError
from tests.backups.conftest import Project
from tests.backups.helpers import read_archive


def write(project: Project, name: str, body: str) -> None:
    (project.root / "querysets" / f"{name}.py").write_text(textwrap.dedent(body))


ANONYMIZED = """
    import hashlib

    def fake_email(doc):
        digest = hashlib.sha256(doc["email"].encode()).hexdigest()[:10]
        doc["email"] = f"user-{digest}@example.invalid"
        return doc

    COLLECTIONS = {
        "users": {"filter": {"active": True}, "limit": 50, "transform": fake_email},
        "orders": {"filter": {"total": {"$gte": 250}}},
    }
    EXCLUDE = ["logs"]
"""


def test_query_set_filters_limits_excludes_and_replaces_emails(shop: Project) -> None:
    write(shop, "anonymized", ANONYMIZED)

    result = backup(shop.config(), "development", query_set="anonymized")

    assert result.manifest.query_set == "anonymized"
    contents = read_archive(shop.store(), result.archive_key)
    assert sorted(contents.collections) == ["empty", "orders", "users"]  # logs left out
    users = contents.decoded("users")
    assert len(users) == 50
    assert all(u["active"] for u in users)
    assert all(u["email"].endswith("@example.invalid") for u in users)
    assert not any("real.example.com" in bytes(d).decode("latin-1")
                   for d in contents.documents["users"])
    orders = contents.decoded("orders")
    assert orders and all(o["total"] >= 250 for o in orders)
    assert len(orders) == shop.db.orders.count_documents({"total": {"$gte": 250}})
    by_name = {c.name: c for c in result.manifest.collections}
    assert by_name["users"].documents == 50
    assert contents.ends["users"].crc == by_name["users"].crc64


def test_untransformed_collections_pass_through_byte_for_byte(shop: Project) -> None:
    write(shop, "anonymized", ANONYMIZED)

    result = backup(shop.config(), "development", query_set="anonymized")

    stored = read_archive(shop.store(), result.archive_key).documents["orders"]
    batches = shop.db.orders.find_raw_batches({"total": {"$gte": 250}})
    assert sorted(stored) == sorted(d for batch in batches for d in _split(batch))


def _split(batch: bytes) -> list[bytes]:
    from monarch.archive import iter_documents

    return [bytes(d) for d in iter_documents(batch)]


def test_transform_returning_none_leaves_the_document_out(shop: Project) -> None:
    write(shop, "odd", """
        def odd_only(doc):
            return doc if doc["_id"] % 2 else None

        COLLECTIONS = {"users": {"transform": odd_only}}
    """)

    result = backup(shop.config(), "development", query_set="odd")

    users = read_archive(shop.store(), result.archive_key).decoded("users")
    assert len(users) == 150 and all(u["_id"] % 2 for u in users)


def test_transform_keeps_bson_types_it_does_not_touch(project: Project) -> None:
    import datetime
    import uuid

    from bson import Binary, Int64, ObjectId, Regex, Timestamp

    doc = {
        "_id": ObjectId(), "when": datetime.datetime(1960, 5, 1, 12, 30, tzinfo=datetime.UTC),
        "big": Int64(5), "small": 5, "uid": Binary.from_uuid(uuid.uuid4()),
        "legacy": Binary(b"\x01" * 16, 3),
        "raw": Binary(b"\x00\xff", 0), "re": Regex("^a", "i"), "ts": Timestamp(1, 2),
        "nested": {"list": [1, "two", 3.5]}, "email": "a@b.c",
    }
    project.db.things.insert_one(doc)
    write(project, "touch", """
        def touch(doc):
            doc["email"] = "x@y.z"
            return doc

        COLLECTIONS = {"things": {"transform": touch}}
    """)

    result = backup(project.config(), "development", query_set="touch")

    [stored] = read_archive(project.store(), result.archive_key).documents["things"]
    [original] = [bytes(d) for d in _split(next(project.db.things.find_raw_batches()))]
    assert stored == original.replace(b"a@b.c", b"x@y.z")


def test_sort_and_limit_take_the_top_documents(shop: Project) -> None:
    write(shop, "top", """
        COLLECTIONS = {"users": {"sort": [("_id", -1)], "limit": 5}}
        INCLUDE_OTHERS = False
    """)

    result = backup(shop.config(), "development", query_set="top")

    contents = read_archive(shop.store(), result.archive_key)
    assert list(contents.collections) == ["users"]
    assert [u["_id"] for u in contents.decoded("users")] == [299, 298, 297, 296, 295]


def test_projection_drops_fields(shop: Project) -> None:
    write(shop, "slim", 'COLLECTIONS = {"users": {"projection": {"email": 0}}}\n')

    result = backup(shop.config(), "development", query_set="slim")

    users = read_archive(shop.store(), result.archive_key).decoded("users")
    assert users and all("email" not in u for u in users)


def test_exclude_takes_shell_patterns(shop: Project) -> None:
    shop.db.logs_2025.insert_one({"x": 1})
    write(shop, "nologs", 'EXCLUDE = ["logs*", "empty"]\n')

    result = backup(shop.config(), "development", query_set="nologs")

    assert sorted(c.name for c in result.manifest.collections) == ["orders", "users"]


def test_a_collection_the_database_lacks_is_an_error_before_anything_is_stored(
    shop: Project,
) -> None:
    write(shop, "typo", 'COLLECTIONS = {"user": {"transform": lambda d: d}}\n')

    with pytest.raises(QuerySetError, match=r"names collection.* the database does not have: user"):
        backup(shop.config(), "development", query_set="typo")

    assert shop.store_keys() == []


def test_a_failing_transform_fails_the_backup_and_stores_nothing(shop: Project) -> None:
    write(shop, "broken", """
        def explode(doc):
            if doc["_id"] == 200:
                raise KeyError("nope")
            return doc

        COLLECTIONS = {"users": {"transform": explode}}
    """)

    with pytest.raises(BackupError, match=r"transform for 'users' failed on .* with _id 200"):
        backup(shop.config(), "development", query_set="broken")

    assert shop.store_keys() == []
    assert shop.store().cleanup(0) == 0  # the upload was aborted, not left behind


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("COLLECTIONS = ['users']", "COLLECTIONS must be a dict"),
        ("COLLECTIONS = {'users': {'fliter': {}}}", "unknown key"),
        ("COLLECTIONS = {'users': {'limit': -1}}", "limit must be a positive integer"),
        ("COLLECTIONS = {'users': {'limit': True}}", "limit must be a positive integer"),
        ("COLLECTIONS = {'users': {'filter': 'active'}}", "filter must be a dict"),
        ("COLLECTIONS = {'users': {'transform': 3}}", "transform must be a function"),
        ("COLLECTIONS = {'users': {'sort': [('a', 2)]}}", "sort must be a list"),
        ("EXCLUDE = 'logs'", "EXCLUDE must be a list"),
        ("EXCLUDED = ['logs']", "defines EXCLUDED, which monarch does not read"),
        ("INCLUDE_OTHERS = 'no'", "INCLUDE_OTHERS must be True or False"),
        ("EXCLUDE = ['users']\nCOLLECTIONS = {'users': {}}", "both excluded and given a query"),
        ("def broken(:\n  pass", "syntax error"),
        ("raise RuntimeError('boom')", "failed to load: RuntimeError: boom"),
    ],
)
def test_malformed_query_sets_are_refused_with_the_reason(
    project: Project, body: str, message: str
) -> None:
    write(project, "bad", body)

    with pytest.raises(QuerySetError, match=message):
        load_query_set(project.config(), "bad")


def test_missing_query_set_names_the_file_and_how_to_create_it(project: Project) -> None:
    write(project, "other", "")

    with pytest.raises(QuerySetError) as info:
        load_query_set(project.config(), "nope")

    assert "nope.py does not exist (known: other)" in info.value.message
    assert info.value.hint == "create it with `monarch generate_query_set nope`"


def test_generated_template_loads_and_dumps_everything(shop: Project) -> None:
    path = generate_query_set(shop.config(), "anonymized")

    assert path == shop.root / "querysets" / "anonymized.py"
    qs = load_query_set(shop.config(), "anonymized")
    assert qs.collections == {} and qs.exclude == () and qs.include_others
    result = backup(shop.config(), "development", query_set="anonymized")
    assert result.documents == 1000


def test_generate_refuses_to_overwrite_unless_forced(project: Project) -> None:
    path = generate_query_set(project.config(), "mine")
    path.write_text("EXCLUDE = ['x']\n")

    with pytest.raises(UsageError, match="already exists"):
        generate_query_set(project.config(), "mine")
    assert path.read_text() == "EXCLUDE = ['x']\n"

    generate_query_set(project.config(), "mine", force=True)
    assert "COLLECTIONS" in path.read_text()


@pytest.mark.parametrize("name", ["../evil", "a b", "", "x.py"])
def test_query_set_names_cannot_escape_the_folder(project: Project, name: str) -> None:
    with pytest.raises(UsageError, match="invalid query set name"):
        generate_query_set(project.config(), name)


def test_query_sets_can_be_built_in_python(shop: Project) -> None:
    qs = query_set_from("inline", {"COLLECTIONS": {"users": {"limit": 3}},
                                   "INCLUDE_OTHERS": False})

    result = backup(shop.config(), "development", query_set=qs)

    assert result.manifest.query_set == "inline"
    assert [(c.name, c.documents) for c in result.manifest.collections] == [("users", 3)]
