"""Query sets: Python files in querysets/ that narrow and transform what a backup dumps."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from bson import Binary, Int64, ObjectId, Regex, Timestamp
from pymongo.database import Database

from monarch import backup, copy_db, generate_query_set, list_query_sets
from monarch.archive import iter_documents
from monarch.errors import BackupError, QuerySetError, UsageError
from monarch.querysets.files import load_query_set, query_set_from
from tests.backups.conftest import Project, environ, seed_shop
from tests.backups.helpers import read_archive
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    data_collections,
    run_cli,
    seed,
    snapshot,
    two_dbs_fixture,
)
from tests.core.test_startup import imported_after


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


# Class-based query sets, as the original monarch 0.0.x's `generate_query_set` wrote them.

ACTIVE_USERS = """\
from click import prompt
from monarch import QuerySet


class ActiveUsersQuerySet(QuerySet):

    def run(self):
        self.dump_collection('users', {'active': True})

    def exclude(self):
        return ['audit_log']
"""


def write_legacy(root: Path, stem: str, body: str) -> Path:
    """``querysets/<stem>_queryset.py`` beside the package marker the original made."""
    folder = root / "querysets"
    folder.mkdir(exist_ok=True)
    (folder / "__init__.py").write_text("")
    path = folder / f"{stem}_queryset.py"
    path.write_text(body)
    return path


def test_class_based_query_set_backup_holds_only_active_users_and_no_audit_log(
    shop: Project,
) -> None:
    shop.db.audit_log.insert_many([{"who": "admin", "n": i} for i in range(20)])
    write_legacy(shop.root, "active_users", ACTIVE_USERS)

    result = backup(shop.config(), "development", query_set="ActiveUsersQuerySet")

    assert result.manifest.query_set == "ActiveUsersQuerySet"
    contents = read_archive(shop.store(), result.archive_key)
    assert sorted(contents.collections) == ["empty", "logs", "orders", "users"]
    users = contents.decoded("users")
    assert len(users) == shop.db.users.count_documents({"active": True}) == 200
    assert all(u["active"] for u in users)
    assert len(contents.documents["orders"]) == 500 and len(contents.documents["logs"]) == 200


@pytest.mark.parametrize("name", ["active_users", "active_users_queryset"])
def test_class_based_query_set_is_found_by_its_file_name_too(shop: Project, name: str) -> None:
    shop.db.audit_log.insert_one({"who": "admin"})
    write_legacy(shop.root, "active_users", ACTIVE_USERS)

    result = backup(shop.config(), "development", query_set=name)

    assert result.manifest.query_set == "ActiveUsersQuerySet"
    by_name = {c.name: c.documents for c in result.manifest.collections}
    assert "audit_log" not in by_name and by_name["users"] == 200


def test_cli_backup_through_a_class_based_query_set_then_restore_drops_what_it_left_out(
    shop: Project,
) -> None:
    shop.db.audit_log.insert_many([{"who": "admin", "n": i} for i in range(20)])
    write_legacy(shop.root, "active_users", ACTIVE_USERS)

    made = shop.cli("backup", "development", "--query-set", "ActiveUsersQuerySet", "--quiet")
    assert made.code == 0, made.output
    restored = shop.cli("restore", f"{made.stdout.strip()}:development", "--quiet")
    assert restored.code == 0, restored.output

    assert data_collections(shop.db) == ["empty", "logs", "orders", "users"]
    assert shop.db.users.count_documents({}) == shop.db.users.count_documents({"active": True})
    assert shop.db.users.count_documents({}) == 200
    assert shop.db.orders.count_documents({}) == 500


def test_copy_db_through_a_class_based_query_set_copies_only_active_users_and_no_audit_log(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    two_dbs.source.audit_log.insert_many([{"who": "admin", "n": i} for i in range(20)])
    write_legacy(two_dbs.root, "active_users", ACTIVE_USERS)
    whole = {name: snapshot(two_dbs.source)[name] for name in ("empty", "notes", "orders")}

    copy_db(two_dbs.config(), "development", "staging", query_set="ActiveUsersQuerySet")

    target = two_dbs.target
    assert data_collections(target) == ["empty", "notes", "orders", "users"]
    active = two_dbs.source.users.count_documents({"active": True})
    assert target.users.count_documents({}) == active
    assert target.users.count_documents({"active": {"$ne": True}}) == 0
    assert {name: snapshot(target)[name] for name in whole} == whole
    assert [i["name"] for i in target.users.list_indexes()] == ["_id_", "email_1"]


def test_cli_copy_db_takes_a_class_name_as_query_set(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    two_dbs.source.audit_log.insert_one({"who": "admin"})
    write_legacy(two_dbs.root, "active_users", ACTIVE_USERS)

    result = run_cli(two_dbs, "copy_db", "development:staging", "--query-set",
                     "ActiveUsersQuerySet", "--quiet")

    assert result.code == 0, result.stderr
    assert "audit_log" not in two_dbs.target.list_collection_names()
    assert two_dbs.target.users.count_documents({"active": False}) == 0


def test_only_limits_what_a_class_based_query_set_dumps_whole(shop: Project) -> None:
    write_legacy(shop.root, "recent", """\
from monarch import QuerySet


class RecentQuerySet(QuerySet):
    def run(self):
        self.dump_collection('logs', {'line': {'$in': ['log line 1', 'log line 2']}})

    def only(self):
        return ['orders', 'users', 'no_such_collection']

    def exclude(self):
        return ['users']
""")

    result = backup(shop.config(), "development", query_set="RecentQuerySet")

    by_name = {c.name: c.documents for c in result.manifest.collections}
    assert by_name == {"logs": 2, "orders": 500}  # dumped by run(), and only() minus exclude()


def test_run_can_use_the_database_and_ask_the_user(shop: Project) -> None:
    write_legacy(shop.root, "top", """\
from click import prompt
from monarch import QuerySet


class TopQuerySet(QuerySet):
    def run(self):
        minimum = float(prompt('Minimum score'))
        ids = [u['_id'] for u in self.database.users.find({'score': {'$gte': minimum}})]
        self.dump_collection('users', {'_id': {'$in': ids}})
        self.dump_collection('orders', {'user': {'$in': ids}})

    def only(self):
        return []
""")

    made = shop.cli("backup", "development", "--query-set", "TopQuerySet", "--json",
                    input="0.9\n")

    assert made.code == 0, made.output
    assert made.stdout.startswith("Minimum score: ")  # click's prompt, as in the original
    manifest = json.loads(made.stdout[made.stdout.index("{"):])["manifest"]
    collections = {c["name"]: c["documents"] for c in manifest["collections"]}
    top = [u["_id"] for u in shop.db.users.find({"score": {"$gte": 0.9}})]
    assert collections == {"users": len(top),
                           "orders": shop.db.orders.count_documents({"user": {"$in": top}})}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("from click import prompt\n\n\nclass ActiveUsersQuerySet(object):\n"
         "    def run(self):\n        pass\n", "defines no query set"),
        ("from monarch import QuerySet\n\n\nclass ActiveUsersQuerySet(QuerySet):\n"
         "    def run(self):\n        raise ValueError('no such region')\n",
         r"ActiveUsersQuerySet failed: ValueError: no such region; nothing was dumped"),
        ("from monarch import QuerySet\n\n\nclass ActiveUsersQuerySet(QuerySet):\n"
         "    def run(self):\n        self.dump_collection('users', 'active')\n",
         "the query must be a dict"),
        ("from monarch import QuerySet\n\n\nclass ActiveUsersQuerySet(QuerySet):\n"
         "    def run(self):\n        self.dump_collection('users')\n"
         "        self.dump_collection('users', {'active': True})\n",
         "dumps collection 'users' twice"),
        ("from monarch import QuerySet\n\n\nclass ActiveUsersQuerySet(QuerySet):\n"
         "    def exclude(self):\n        return 'audit_log'\n", "must return a list"),
        ("from monarch import QuerySet\n\n\nclass ActiveUsersQuerySet(QuerySet):\n"
         "    def run(self):\n        self.dump_collection('user', {'active': True})\n",
         "the database does not have: user"),
        ("from monarch import QuerySet\nEXCLUDE = []\n\n\nclass ActiveUsersQuerySet(QuerySet):\n"
         "    pass\n", "defines both a QuerySet class and EXCLUDE"),
    ],
)
def test_a_query_set_file_monarch_cannot_follow_is_refused_and_nothing_is_stored(
    shop: Project, body: str, message: str
) -> None:
    write_legacy(shop.root, "active_users", body)

    with pytest.raises(QuerySetError, match=message):
        backup(shop.config(), "development", query_set="active_users")

    assert shop.store_keys() == []


def test_a_broken_class_based_query_set_copies_nothing(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=3)
    before = snapshot(two_dbs.target)
    write_legacy(two_dbs.root, "active_users", ACTIVE_USERS.replace(
        "self.dump_collection('users', {'active': True})", "raise KeyError('region')"))

    result = run_cli(two_dbs, "copy_db", "development:staging", "--query-set",
                     "ActiveUsersQuerySet")

    assert result.code != 0
    assert "Error: " in result.stderr and "ActiveUsersQuerySet failed: KeyError" in result.stderr
    assert snapshot(two_dbs.target) == before


def test_a_file_that_defines_nothing_is_refused_not_taken_for_everything(shop: Project) -> None:
    write(shop, "empty_one", "import os\n")

    with pytest.raises(QuerySetError, match="defines no query set") as info:
        backup(shop.config(), "development", query_set="empty_one")

    assert info.value.hint is not None and "EXCLUDE = []" in info.value.hint
    assert shop.store_keys() == []


def test_an_unknown_class_name_lists_the_known_query_sets(project: Project) -> None:
    write_legacy(project.root, "active_users", ACTIVE_USERS)
    write(project, "anonymized", ANONYMIZED)

    with pytest.raises(QuerySetError) as info:
        load_query_set(project.config(), "InactiveUsersQuerySet")

    assert "(known: ActiveUsersQuerySet, anonymized)" in info.value.message


def test_list_query_sets_lists_files_and_classes_without_running_them(project: Project) -> None:
    write(project, "anonymized", ANONYMIZED)
    write_legacy(project.root, "active_users", ACTIVE_USERS + "\nraise SystemExit('ran')\n")

    found = list_query_sets(project.config())

    assert [(q.name, q.kind, q.path.name) for q in found] == [
        ("ActiveUsersQuerySet", "class", "active_users_queryset.py"),
        ("anonymized", "module", "anonymized.py"),
    ]
    listed = project.cli("list_query_sets")
    assert listed.code == 0, listed.output
    assert re.search(r"ActiveUsersQuerySet\s+class \(monarch.QuerySet\)\s+active_users_queryset.py",
                     listed.stdout)
    assert re.search(r"anonymized\s+file\s+anonymized.py", listed.stdout)
    assert "__init__" not in listed.stdout
    assert project.cli("list-query-sets", "--json").stdout.count('"kind"') == 2


def test_list_query_sets_without_any_says_how_to_make_one(project: Project) -> None:
    listed = project.cli("list_query_sets")

    assert listed.code == 0
    assert "No query sets in" in listed.stdout and "generate_query_set NAME" in listed.stdout


def test_from_monarch_import_queryset_imports_no_driver() -> None:
    assert imported_after("from monarch import QuerySet") == set()


def test_a_0_0_x_project_backs_up_through_its_query_set_by_class_name(
    tmp_path: Path, mongo_url: str, mongo_db: Database[dict[str, Any]]
) -> None:
    """No monarch.toml: the original's settings.py, query set file and command line."""
    seed_shop(mongo_db)
    mongo_db.audit_log.insert_many([{"who": "admin", "n": i} for i in range(5)])
    parts = urlsplit(mongo_url)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "__init__.py").write_text("# this file makes migrations a package\n")
    (tmp_path / "migrations" / "settings.py").write_text(
        "ENVIRONMENTS = {\n"
        f"    'development': {{'host': '{parts.hostname}:{parts.port}', "
        f"'db_name': '{mongo_db.name}'}},\n"
        "}\n"
        "BACKUPS = {'LOCAL': {'backup_dir': 'backups'}}\n"
    )
    write_legacy(tmp_path, "active_users", ACTIVE_USERS)

    def monarch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monarch", *args], cwd=tmp_path,
                              env=environ(), capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)

    listed = monarch("list_query_sets")
    made = monarch("backup", "development", "--query-set", "ActiveUsersQuerySet", "--json")

    assert listed.returncode == 0, listed.stderr
    assert "ActiveUsersQuerySet" in listed.stdout
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)["manifest"]
    assert manifest["query_set"] == "ActiveUsersQuerySet"
    assert {c["name"]: c["documents"] for c in manifest["collections"]} == {
        "empty": 0, "logs": 200, "orders": 500, "users": 200}
