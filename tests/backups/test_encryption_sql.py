"""Encrypted backups of PostgreSQL and SQLite environments, on the local store and S3: the same
age encryption and sealed manifest as for MongoDB, and pg_restore reading a backup decrypted
without monarch."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

import monarch
from monarch.errors import EncryptionError
from tests.backups.encryption_support import HMAC_VARIABLE, decrypt_file, encrypt_to, make_key
from tests.backups.sql_support import (  # noqa: F401 - fixtures
    SQLProject,
    local_project_fixture,
    sql_project_fixture,
)
from tests.engines.pg_helpers import contents, fill_old, fill_rich
from tests.engines.sqlite_helpers import contents as lite_contents
from tests.engines.sqlite_helpers import fill as lite_fill
from tests.engines.sqlite_helpers import fill_other as lite_fill_other


@pytest.fixture(autouse=True)
def no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONARCH_AGE_IDENTITY", HMAC_VARIABLE):
        monkeypatch.delenv(name, raising=False)


def stored(p: SQLProject) -> dict[str, bytes]:
    store = p.store()
    found = {}
    for info in store.list():
        with store.reader(info.key) as stream:
            found[info.key] = stream.read()
    return found


def test_an_encrypted_postgres_backup_round_trips_and_hides_its_tables(
    sql_project: SQLProject, tmp_path: Path,
) -> None:
    p = sql_project
    fill_rich(p.urls["development"])
    fill_old(p.urls["staging"])
    key = make_key(tmp_path)
    encrypt_to(p.config_path, key.recipient)

    made = monarch.backup(p.config(), "development")
    with pytest.raises(EncryptionError):
        monarch.restore(p.config(), made.name, "staging")
    untouched = contents(p.urls["staging"])
    verified = monarch.verify(p.config(), made.name, identity=key.path)
    monarch.restore(p.config(), made.name, "staging", identity=key.path)

    assert made.archive_key.endswith(".archive.gz.age")
    assert verified.ok, verified.problems
    assert untouched != contents(p.urls["development"])
    assert contents(p.urls["staging"]) == contents(p.urls["development"])
    for key_name, data in stored(p).items():
        for word in (b"customers", b"orders", b"shop", b"PGDMP"):  # the format is in clear
            assert word not in data, (key_name, word)
    manifest = json.loads(stored(p)[made.manifest_key])
    assert manifest["engine"] == "postgres" and "tool_version" not in manifest


def test_an_encrypted_sqlite_backup_round_trips(sql_project: SQLProject, tmp_path: Path) -> None:
    p = sql_project
    lite_fill(p.lite(), rows=200, wal=True)
    lite_fill_other(p.lite("lite_copy"))
    key = make_key(tmp_path)
    encrypt_to(p.config_path, key.recipient)

    made = monarch.backup(p.config(), "lite")
    monarch.restore(p.config(), made.name, "lite_copy", identity=key.path)

    assert lite_contents(p.lite("lite_copy")) == lite_contents(p.lite())
    for data in stored(p).values():
        assert b"SQLite format 3" not in data and b"customers" not in data
    assert monarch.verify(p.config(), made.name, identity=key.path).ok


def test_an_encrypted_postgres_backup_decrypts_without_monarch_for_pg_restore(
    local_project: SQLProject, tmp_path: Path,
) -> None:
    """age -d -i key.txt NAME.archive.gz.age | gunzip > db.dump; pg_restore -d URL db.dump
    (pyrage stands in for the age command, which is not installed here)."""
    p = local_project
    fill_rich(p.urls["development"])
    key = make_key(tmp_path)
    encrypt_to(p.config_path, key.recipient)
    made = monarch.backup(p.config(), "development")

    dump = tmp_path / "db.dump"
    dump.write_bytes(gzip.decompress(decrypt_file(tmp_path / "backups" / made.archive_key, key)))
    done = subprocess.run([str(p.bin_dir / "pg_restore"), "--no-owner", "-d",
                           p.urls["staging"], str(dump)],
                          capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stderr[-2000:]
    assert contents(p.urls["staging"]) == contents(p.urls["development"])
