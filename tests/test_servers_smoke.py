"""The test servers are real: what a test writes, it reads back over the wire."""

from __future__ import annotations

import subprocess
from typing import Any

import psycopg
from pymongo.database import Database

from tests.servers import MongoServer, MongoTools, S3Bucket


def test_mongo_stores_and_returns_a_document(mongo_db: Database[dict[str, Any]]) -> None:
    mongo_db.things.insert_one({"_id": 1, "name": "monarch", "tags": ["a", "b"]})

    assert mongo_db.things.find_one({"_id": 1}) == {"_id": 1, "name": "monarch", "tags": ["a", "b"]}


def test_mongo_server_describes_itself(mongo_server: MongoServer) -> None:
    assert mongo_server.uri.startswith("mongodb")
    assert mongo_server.kind in {"external", "mongod", "ferretdb"}
    if mongo_server.is_ferretdb:
        assert not mongo_server.supports_transactions


def test_each_test_gets_its_own_mongo_database(mongo_url: str, mongo_server: MongoServer) -> None:
    assert mongo_url.rsplit("/", 1)[1].startswith("t_")
    assert mongo_url.startswith(mongo_server.uri)


def test_postgres_stores_and_returns_a_row(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE things (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO things VALUES (1, 'monarch')")

        assert conn.execute("SELECT id, name FROM things").fetchall() == [(1, "monarch")]


def test_s3_stores_and_returns_an_object(s3_bucket: S3Bucket) -> None:
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="backups/x", Body=b"payload")

    body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="backups/x")["Body"].read()
    assert body == b"payload"
    assert s3_bucket.url == f"s3://{s3_bucket.name}/backups"


def test_mongo_tools_run_and_ship_sample_archives(mongo_tools: MongoTools) -> None:
    for tool in (mongo_tools.mongodump, mongo_tools.mongorestore):
        result = subprocess.run(
            [str(tool), "--version"], capture_output=True, text=True, check=True
        )
        assert "100.10.0" in result.stdout
    assert (mongo_tools.testdata / "test.bar.archive").is_file()
