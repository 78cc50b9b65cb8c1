"""A project of monarch 0.0.x upgraded to monarch: its files are migrations, its history in
``mongo_migration_history`` counts, nothing runs twice, and the old history is never written."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import mongoengine
import pytest
from mongoengine.connection import ConnectionFailure, get_connection
from pymongo.database import Database

import monarch
from tests.migrations.legacy_project import LegacyProject

ADD_INDEX = "201603141200", "add_email_index"
TO_CENTS = "201605020930", "prices_to_cents"

INDEX_BODY = """
    echo('adding the email index')
    get_db().users.create_index('email', unique=True)
"""
CENTS_BODY = """
    db = get_db()
    for product in db.products.find():
        db.products.update_one({'_id': product['_id']}, {'$set': {'price': product['price'] * 100}})
"""
GET_DB = "from mongoengine.connection import get_db\n"


@pytest.fixture
def legacy(
    tmp_path: Path, mongo_url: str, mongo_db: Database[dict[str, Any]]
) -> Iterator[LegacyProject]:
    """A 0.0.x project with two applied migrations and a product priced 1999 (in cents)."""
    made = LegacyProject(tmp_path, mongo_url, mongo_db)
    made.write_settings()
    index = made.legacy(*ADD_INDEX, INDEX_BODY, imports=GET_DB)
    cents = made.legacy(*TO_CENTS, CENTS_BODY, imports=GET_DB)
    mongo_db.products.insert_one({"_id": "book", "price": 1999})
    made.history(index, "Completed")
    made.history(cents, "Completed")
    yield made
    made.stop_spawned()


def key(stamp_name: tuple[str, str]) -> str:
    return f"_{stamp_name[0]}_{stamp_name[1]}_migration"


def states(project: LegacyProject) -> dict[str, str]:
    result = project.cli("list_migrations", "development", "--json")
    assert result.code == 0, result.output
    return {m["name"]: m["state"] for m in json.loads(result.stdout)["migrations"]}


def new_style(project: LegacyProject, name: str, body: str) -> None:
    (project.migrations / f"{name}.py").write_text(
        "from monarch import MongoMigration\n\n\n"
        "class M(MongoMigration):\n"
        "    def run(self):\n"
        f"        {body}\n"
    )


def order_logging(project: LegacyProject, name: str) -> str:
    """A run() body that appends ``name`` to the ``order`` collection."""
    return f"get_db().order.insert_one({{'name': {name!r}}})"


def test_upgraded_project_runs_only_its_pending_migration_once(legacy: LegacyProject) -> None:
    new_style(
        legacy,
        "20240301120000_add_flag",
        "self.db.products.update_many({}, {'$set': {'flag': True}})",
    )
    before = legacy.legacy_history()

    first = legacy.cli("migrate", "development")
    assert first.code == 0, first.output
    assert "20240301120000_add_flag" in first.stdout
    assert key(TO_CENTS) not in first.stdout
    assert legacy.db.products.find_one({"_id": "book"}) == {
        "_id": "book",
        "price": 1999,
        "flag": True,
    }
    after_first = legacy.snapshot()

    second = legacy.cli("migrate", "development")
    assert second.code == 0, second.output
    assert "up to date" in second.stdout
    assert legacy.snapshot() == after_first
    assert legacy.legacy_history() == before


def test_the_first_migrate_imports_the_old_history_once_saying_where_it_came_from(
    legacy: LegacyProject,
) -> None:
    ids = {doc["key"]: doc["_id"] for doc in legacy.legacy_history()}
    result = legacy.cli("migrate", "development")
    assert result.code == 0, result.output
    records = legacy.records()
    assert set(records) == {key(ADD_INDEX), key(TO_CENTS)}
    for name, record in records.items():
        assert record["state"] == "applied"
        assert record["source"] == "monarch 0.0.x"
        assert record["imported_from"]["collection"] == "mongo_migration_history"
        assert record["imported_from"]["ids"] == [ids[name]]
        assert record["imported_from"]["states"] == ["Completed"]
        assert len(record["checksum"]) == 64  # drift is measured from here on
        assert record["run_count"] == 0
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 1999


def test_list_reads_the_old_history_in_place_without_writing(legacy: LegacyProject) -> None:
    before = legacy.snapshot()
    assert states(legacy) == {key(ADD_INDEX): "applied", key(TO_CENTS): "applied"}
    text = legacy.cli("list_migrations", "development")
    assert text.code == 0, text.output
    assert "recorded by monarch 0.0.x as Completed" in text.stdout
    assert "development is up to date." in text.stdout
    assert legacy.snapshot() == before


def test_processing_shows_as_interrupted_and_runs_again_only_when_named(
    legacy: LegacyProject,
) -> None:
    legacy.db.mongo_migration_history.update_one(
        {"key": key(TO_CENTS)}, {"$set": {"state": "Processing"}}
    )
    new_style(legacy, "20240301120000_add_flag", "self.db.flags.insert_one({'x': 1})")
    before = legacy.snapshot()
    assert states(legacy)[key(TO_CENTS)] == "interrupted"
    assert "left Processing by monarch 0.0.x" in legacy.cli("status", "development").stdout

    refused = legacy.cli("migrate", "development")
    assert refused.code == 1, refused.output
    assert key(TO_CENTS) in refused.stderr and "nothing was run" in refused.stderr
    assert f"monarch migrate_one {key(TO_CENTS)} development" in refused.stderr
    assert legacy.snapshot() == before

    forced = legacy.cli("migrate_one", "prices_to_cents", "development")
    assert forced.code == 0, forced.output
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 199900
    assert states(legacy)[key(TO_CENTS)] == "applied"
    rest = legacy.cli("migrate", "development")
    assert rest.code == 0, rest.output
    assert legacy.db.flags.count_documents({}) == 1
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 199900
    assert legacy.legacy_history() == before["mongo_migration_history"]


def test_failed_shows_as_failed_and_is_not_run_by_migrate(legacy: LegacyProject) -> None:
    legacy.db.mongo_migration_history.update_one(
        {"key": key(TO_CENTS)}, {"$set": {"state": "Failed"}}
    )
    assert states(legacy)[key(TO_CENTS)] == "failed"
    refused = legacy.cli("migrate", "development")
    assert refused.code == 1 and "failed or unfinished" in refused.stderr
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 1999


def test_new_runs_and_mongoengine_models_work_unchanged(legacy: LegacyProject) -> None:
    name = legacy.legacy(
        "201701010000",
        "tag_users",
        """
        class User(Document):
            meta = {'collection': 'users'}
            email = StringField()
            tag = StringField()
        User(email='a@example.com', tag='new').save()
        echo('tagged %d user(s)' % User.objects(tag='new').count())
        """,
        imports="from mongoengine import Document, StringField\n",
    )
    legacy.history(name, "New")
    assert states(legacy)[name] == "pending"
    result = legacy.cli("migrate", "development")
    assert result.code == 0, result.output
    assert "tagged 1 user(s)" in result.output
    assert legacy.db.users.find_one({}, {"_id": 0}) == {"email": "a@example.com", "tag": "new"}
    assert legacy.records()[name]["source"] == "monarch 0.0.x"
    with pytest.raises(ConnectionFailure):
        get_connection()  # monarch disconnected mongoengine's default after running


def test_a_legacy_key_without_its_file_is_reported_and_stops_migrate(
    legacy: LegacyProject,
) -> None:
    (legacy.migrations / f"{key(ADD_INDEX)}.py").rename(
        legacy.migrations / "20160314120000_add_email_index.py"
    )
    assert states(legacy)[key(ADD_INDEX)] == "missing"
    assert "file missing (it must keep its name)" in legacy.cli("status", "development").stdout
    before = legacy.snapshot()
    refused = legacy.cli("migrate", "development")
    assert refused.code == 1, refused.output
    assert f"records {key(ADD_INDEX)}, but the migrations folder has no such file" in (
        refused.stderr
    )
    assert legacy.snapshot() == before


def test_legacy_and_new_style_files_run_in_time_order(
    tmp_path: Path, mongo_url: str, mongo_db: Database[dict[str, Any]]
) -> None:
    project = LegacyProject(tmp_path, mongo_url, mongo_db)
    project.write_settings()
    project.legacy("201603141200", "second", order_logging(project, "second"), imports=GET_DB)
    project.legacy("201801010000", "fourth", order_logging(project, "fourth"), imports=GET_DB)
    new_style(project, "20150101000000_first", "self.db.order.insert_one({'name': 'first'})")
    new_style(project, "20160314120001_third", "self.db.order.insert_one({'name': 'third'})")
    new_style(project, "20240101000000_fifth", "self.db.order.insert_one({'name': 'fifth'})")
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output
    ran = [doc["name"] for doc in mongo_db.order.find().sort("_id", 1)]
    assert ran == ["first", "second", "third", "fourth", "fifth"]
    listed = list(states(project))
    assert listed == [
        "20150101000000_first",
        "_201603141200_second_migration",
        "20160314120001_third",
        "_201801010000_fourth_migration",
        "20240101000000_fifth",
    ]


def test_a_new_style_file_sharing_a_legacy_stamp_is_refused(legacy: LegacyProject) -> None:
    new_style(legacy, "20160314120000_clash", "pass")
    result = legacy.cli("list_migrations", "development")
    assert result.code != 0
    assert "share the timestamp 20160314120000" in result.stderr


def test_helper_modules_starting_with_underscore_stay_helpers(legacy: LegacyProject) -> None:
    (legacy.migrations / "_helpers.py").write_text("LABEL = 'from a helper'\n")
    name = legacy.legacy(
        "201701010000", "use_helper", "echo(LABEL)", imports="from _helpers import LABEL\n"
    )
    assert name in states(legacy) and "_helpers" not in states(legacy)
    result = legacy.cli("migrate", "development")
    assert result.code == 0, result.output
    assert "from a helper" in result.output


def test_legacy_records_have_no_drift_until_first_seen(legacy: LegacyProject) -> None:
    path = legacy.migrations / f"{key(ADD_INDEX)}.py"
    path.write_text(path.read_text() + "# edited before the upgrade\n")
    assert states(legacy)[key(ADD_INDEX)] == "applied"
    assert legacy.cli("migrate", "development").code == 0
    path.write_text(path.read_text() + "# edited after the upgrade\n")
    assert states(legacy)[key(ADD_INDEX)] == "changed"


def test_migrate_one_accepts_the_short_forms_of_a_legacy_name(legacy: LegacyProject) -> None:
    for short in ("add_email_index", "add_email_index_migration", "201603141200"):
        result = legacy.cli("migrate_one", short, "development")
        assert result.code == 0, result.output
        assert key(ADD_INDEX) in result.stdout
    assert legacy.records()[key(ADD_INDEX)]["run_count"] == 3


def test_the_cli_works_end_to_end_in_the_project_folder(legacy: LegacyProject) -> None:
    """`monarch` run from the project's root finds migrations/settings.py, as 0.0.x did."""
    new_style(legacy, "20240301120000_add_flag", "self.db.flags.insert_one({'x': 1})")
    listed = legacy.process("list_migrations", "development")
    assert listed.returncode == 0, listed.stderr
    assert "1 to run on development." in listed.stdout
    ran = legacy.process("migrate", "development")
    assert ran.returncode == 0, ran.stderr
    assert legacy.db.flags.count_documents({}) == 1
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 1999
    again = legacy.process("migrate", "development")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_monarch_reexports_click_echo_and_progressbar() -> None:
    assert monarch.echo is click.echo
    assert monarch.progressbar is click.progressbar


def test_an_existing_mongoengine_default_connection_is_refused_not_reused(
    legacy: LegacyProject,
) -> None:
    new_style(legacy, "20240301120000_add_flag", "self.db.flags.insert_one({'x': 1})")
    mongoengine.connect(
        "somewhere_else",
        host="mongodb://127.0.0.1:1/somewhere_else",
        uuidRepresentation="standard",
        connect=False,
    )
    try:
        result = legacy.cli("migrate", "development")
    finally:
        mongoengine.disconnect()
    assert result.code == 1
    assert "mongoengine already has a default connection" in result.stderr
    assert legacy.db.flags.count_documents({}) == 0
    assert "20240301120000_add_flag" not in legacy.records()


def test_record_only_settles_a_processing_migration_without_running_it(
    legacy: LegacyProject,
) -> None:
    legacy.db.mongo_migration_history.update_one(
        {"key": key(TO_CENTS)}, {"$set": {"state": "Processing"}}
    )
    dry = legacy.cli("migrate_one", "prices_to_cents", "development", "--record-only", "--dry-run")
    assert "recorded as applied without running it" in dry.stdout
    result = legacy.cli("migrate_one", "prices_to_cents", "development", "--record-only")
    assert result.code == 0, result.output
    assert "(recorded without running it)" in result.stdout
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 1999
    assert states(legacy)[key(TO_CENTS)] == "applied"
    assert legacy.cli("migrate", "development").code == 0
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 1999
    assert legacy.db.mongo_migration_history.find_one({"key": key(TO_CENTS)})["state"] == (
        "Processing"
    )


def test_generate_refuses_the_name_of_a_legacy_migration(legacy: LegacyProject) -> None:
    result = legacy.cli("generate", "prices_to_cents")
    assert result.code == 2
    assert "a migration named 'prices_to_cents' already exists" in result.stderr
    made = legacy.cli("generate", "prices_to_euros")
    assert made.code == 0, made.output
    assert [p.name for p in legacy.migrations.glob("2*_prices_to_euros.py")]


def test_disagreeing_duplicate_records_count_as_interrupted_not_guessed(
    legacy: LegacyProject,
) -> None:
    legacy.history(key(TO_CENTS), "New")
    assert states(legacy)[key(TO_CENTS)] == "interrupted"
    row = next(
        line
        for line in legacy.cli("status", "development").stdout.splitlines()
        if key(TO_CENTS) in line
    )
    assert "2 history records for it with different states (Completed, New)" in row
    refused = legacy.cli("migrate", "development")
    assert refused.code == 1 and "nothing was run" in refused.stderr
    assert legacy.db.products.find_one({"_id": "book"})["price"] == 1999


def test_without_mongoengine_a_legacy_migration_fails_with_how_to_install_it(
    legacy: LegacyProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 0.0.x migration that reaches the database through mongoengine, on a machine where
    mongoengine is not installed: the failure says which extra brings it."""
    legacy.legacy("201701010000", "add_flag", "    get_db().flags.insert_one({'x': 1})\n",
                  imports=GET_DB)
    monkeypatch.setitem(sys.modules, "mongoengine", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "mongoengine.connection", None)
    result = legacy.cli("migrate", "development")
    assert result.code == 1
    assert "Try: install mongoengine (`pip install 'monarch[legacy]'`)" in result.stderr
    assert legacy.db.flags.count_documents({}) == 0


def test_writes_through_mongoengines_connection_are_counted_and_imported_records_still_list(
    legacy: LegacyProject,
) -> None:
    pending = legacy.legacy("201607010000", "tag_products", """
        get_db().products.update_many({}, {'$set': {'tag': 'x'}})
        get_db().tags.insert_one({'name': 'x'})
    """, imports=GET_DB)
    result = legacy.cli("migrate", "development")
    assert result.code == 0, result.output
    accounting = legacy.records()[pending]["accounting"]
    assert accounting == [
        {"target": "products", "matched": 1, "modified": 1},
        {"target": "tags", "inserted": 1},
    ]
    listed = legacy.cli("list_migrations", "development", "--verbose", "--json")
    assert listed.code == 0, listed.output
    records = {m["name"]: m["record"] for m in json.loads(listed.stdout)["migrations"]}
    assert records[key(ADD_INDEX)]["accounting"] is None  # imported from 0.0.x: none
    text = legacy.cli("list_migrations", "development", "--verbose")
    assert f"{key(ADD_INDEX)}: no write accounting (recorded by monarch 0.0.x)" in text.stdout
    assert f"{pending}: its last run wrote\n    products: 1 matched, 1 modified" in text.stdout
