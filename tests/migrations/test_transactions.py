"""`transactional = True`: run() and its history record commit together where the server has
transactions; elsewhere (FerretDB, a standalone server) monarch refuses before anything runs."""

from __future__ import annotations

import pytest

import monarch
from monarch.errors import TransactionUnsupported
from tests.migrations.conftest import Project
from tests.servers import MongoServer

A, B = "20240101000001_plain", "20240101000002_atomic"

ATOMIC = """
    self.db.items.insert_one({"step": 1}, session=self.session)
    self.db.items.insert_one({"step": 2}, session=self.session)
"""


def test_transactional_migration_is_refused_where_the_server_has_no_transactions(
    project: Project, mongo_server: MongoServer
) -> None:
    if mongo_server.supports_transactions:
        pytest.skip(f"this {mongo_server.kind} server has transactions")
    project.counting(A)
    project.write(B, ATOMIC, attrs="transactional = True")
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert f"{B} declare(s) transactional = True" in result.stderr
    assert "has no transactions (FerretDB and standalone servers have none)" in result.stderr
    assert "nothing was run" in result.stderr
    assert project.db.list_collection_names() == []
    with pytest.raises(TransactionUnsupported):
        monarch.migrate(project.config(), "development", dry_run=True)


def test_transactional_migration_commits_with_its_record(
    project: Project, mongo_server: MongoServer
) -> None:
    if not mongo_server.supports_transactions:
        pytest.skip(f"{mongo_server.kind} {mongo_server.version} has no transactions")
    project.db.create_collection("items")  # collections cannot be created inside a transaction
    project.write(B, ATOMIC, attrs="transactional = True")
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert project.db.items.count_documents({}) == 2
    assert project.records()[B]["state"] == "applied"


def test_failed_transactional_migration_leaves_no_partial_writes(
    project: Project, mongo_server: MongoServer
) -> None:
    if not mongo_server.supports_transactions:
        pytest.skip(f"{mongo_server.kind} {mongo_server.version} has no transactions")
    project.db.create_collection("items")
    project.write(
        B, ATOMIC + '\n    raise RuntimeError("after the writes")', attrs="transactional = True"
    )
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert project.db.items.count_documents({}) == 0
    record = project.records()[B]
    assert record["state"] == "failed" and "after the writes" in record["error"]
