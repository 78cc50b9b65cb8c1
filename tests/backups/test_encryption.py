"""Encrypted backups (age) and authenticated manifests (HMAC-SHA256), on the real servers: every
engine, the local store and S3; wrong and missing keys, damaged ciphertext, edited manifests,
and a store configured to encrypt that never gets a plaintext backup."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

import monarch
from monarch.backups.catalog import BackupInfo
from monarch.errors import ArchiveError, ConfigError, EncryptionError, ManifestTampered
from tests.backups.conftest import Project, environ, seed_shop
from tests.backups.encryption_support import (
    HMAC_VARIABLE,
    PASSPHRASE_VARIABLE,
    add_backup_settings,
    decrypt_file,
    encrypt_to,
    make_key,
)
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    snapshot,
    two_dbs_fixture,
)
from tests.servers import MongoTools

SECRET_WORDS = (b"users", b"orders", b"logs", b"email_1", b"user_total", b"real.example.com")
"""Collection, index and value text of the shop database: none may be readable in the store."""


@pytest.fixture(autouse=True)
def no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONARCH_AGE_IDENTITY", HMAC_VARIABLE, PASSPHRASE_VARIABLE):
        monkeypatch.delenv(name, raising=False)


def stored_bytes(project: Project) -> dict[str, bytes]:
    store = project.store()
    found = {}
    for info in store.list():
        with store.reader(info.key) as stream:
            found[info.key] = stream.read()
    return found


def manifest_path(root: Path, name: str) -> Path:
    return root / "backups" / f"{name}.manifest.json"


def test_an_encrypted_backup_round_trips_and_the_store_holds_no_plaintext(
    any_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = any_project
    seed_shop(p.db)
    key = make_key(tmp_path)
    encrypt_to(p.config_path, key.recipient)
    before = snapshot(p.db)

    made = monarch.backup(p.config(), "development")
    p.db.users.delete_many({})
    p.db.drop_collection("logs")
    monkeypatch.setenv("MONARCH_AGE_IDENTITY", str(key.path))
    verified = monarch.verify(p.config(), made.name)
    monarch.restore(p.config(), made.name, "development")

    assert made.archive_key.endswith(".archive.gz.age")
    assert made.documents == 1000 and made.manifest.encryption is not None
    assert verified.ok, verified.problems
    assert verified.documents == 1000
    assert snapshot(p.db) == before
    objects = stored_bytes(p)
    assert sorted(objects) == sorted([made.archive_key, made.manifest_key,
                                      f"{made.name}.verified.json"])
    assert objects[made.archive_key].startswith(b"age-encryption.org/v1\n-> X25519 ")
    for key_name, data in objects.items():
        for word in (*SECRET_WORDS, p.db.name.encode()):
            assert word not in data, (key_name, word)
    manifest = json.loads(objects[made.manifest_key])
    assert manifest["format_version"] == 2
    assert "collections" not in manifest and "totals" not in manifest
    assert "database" not in manifest and "source_host" not in manifest
    assert manifest["encryption"]["recipients"] == [made.manifest.encryption.recipients[0]]
    assert key.recipient not in objects[made.manifest_key].decode()


def test_list_backups_shows_an_encrypted_backup_without_its_counts(
    project: Project, tmp_path: Path,
) -> None:
    seed_shop(project.db)
    encrypt_to(project.config_path, make_key(tmp_path).recipient)
    made = monarch.backup(project.config(), "development")

    (info,) = monarch.list_backups(project.config())
    listed = project.cli("list_backups")
    as_json = json.loads(project.cli("list_backups", "--json").stdout)

    assert isinstance(info, BackupInfo) and made.manifest.encryption is not None
    assert info.name == made.name and info.encrypted
    assert info.documents == 0 and info.size == made.size
    assert listed.code == 0 and "encrypted (age)" in listed.stdout
    assert as_json[0]["encrypted"] is True and as_json[0]["documents"] is None
    assert as_json[0]["recipients"] == list(made.manifest.encryption.recipients)


def test_restore_with_the_wrong_key_or_no_identity_is_refused_and_touches_nothing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_shop(project.db)
    encrypt_to(project.config_path, make_key(tmp_path, "right").recipient)
    made = monarch.backup(project.config(), "development")
    project.db.users.delete_many({"_id": {"$lt": 100}})
    changed = snapshot(project.db)
    wrong = make_key(tmp_path, "wrong")

    with pytest.raises(EncryptionError) as missing:
        monarch.restore(project.config(), made.name, "development")
    with pytest.raises(EncryptionError) as refused:
        monarch.restore(project.config(), made.name, "development", identity=wrong.path)
    monkeypatch.setenv("MONARCH_AGE_IDENTITY", str(wrong.path))
    with pytest.raises(EncryptionError):
        monarch.verify(project.config(), made.name)
    cli = project.cli("verify", made.name, "--identity", str(wrong.path))

    assert "no age identity was given" in missing.value.message
    assert "MONARCH_AGE_IDENTITY" in (missing.value.hint or "")
    assert "holds none of them" in refused.value.message and "nothing was touched" in \
        refused.value.message
    assert cli.code != 0 and "holds none of them" in cli.output
    assert wrong.secret not in cli.output and "AGE-SECRET-KEY" not in cli.output
    assert snapshot(project.db) == changed


def test_a_flipped_byte_in_the_ciphertext_fails_verify_and_restore_before_the_swap(
    project: Project, tmp_path: Path,
) -> None:
    seed_shop(project.db)
    key = make_key(tmp_path)
    encrypt_to(project.config_path, key.recipient)
    made = monarch.backup(project.config(), "development")
    archive = tmp_path / "backups" / made.archive_key
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    project.db.orders.delete_many({})
    changed = snapshot(project.db)

    result = monarch.verify(project.config(), made.name, identity=key.path)
    with pytest.raises(ArchiveError) as refused:
        monarch.restore(project.config(), made.name, "development", identity=key.path)

    assert not result.ok
    assert any("does not decrypt" in p for p in result.problems), result.problems
    recorded = json.loads((tmp_path / "backups" / f"{made.name}.verified.json").read_text())
    assert recorded["ok"] is False and "the backup is encrypted" in recorded["problems"][0]
    assert any(p.startswith("SHA-256") for p in result.problems), result.problems
    assert "does not decrypt" in refused.value.message or "SHA-256" in refused.value.message
    assert snapshot(project.db) == changed


@pytest.mark.parametrize("encrypted", [False, True])
def test_an_edited_manifest_is_refused_by_verify_and_restore_and_says_so(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool,
) -> None:
    seed_shop(project.db)
    key = make_key(tmp_path)
    monkeypatch.setenv(HMAC_VARIABLE, "k" * 40)
    monkeypatch.setenv("MONARCH_AGE_IDENTITY", str(key.path))
    add_backup_settings(project.config_path, f'manifest_key_env = "{HMAC_VARIABLE}"')
    if encrypted:
        encrypt_to(project.config_path, key.recipient)
    made = monarch.backup(project.config(), "development")
    path = manifest_path(tmp_path, made.name)
    original = path.read_text()
    assert json.loads(original)["hmac"]["alg"] == "HMAC-SHA256"
    assert monarch.verify(project.config(), made.name).ok

    doc = json.loads(original)
    doc["label"] = "edited"
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestTampered) as by_verify:
        monarch.verify(project.config(), made.name)
    with pytest.raises(ManifestTampered) as by_restore:
        monarch.restore(project.config(), made.name, "development")
    cli = project.cli("verify", made.name)

    del doc["hmac"]
    doc["label"] = None
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestTampered) as stripped:
        monarch.verify(project.config(), made.name)

    monkeypatch.setenv(HMAC_VARIABLE, "x" * 40)
    path.write_text(original)
    with pytest.raises(ManifestTampered):
        monarch.verify(project.config(), made.name)

    assert "manifest was edited" in by_verify.value.message
    assert "HMAC" in by_restore.value.message and "nothing was touched" in \
        by_restore.value.message
    assert cli.code != 0 and "manifest was edited" in cli.output and "k" * 40 not in cli.output
    assert "has no HMAC tag" in stripped.value.message


def test_an_edited_archive_under_an_authentic_manifest_is_refused_as_the_archive(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_shop(project.db)
    monkeypatch.setenv(HMAC_VARIABLE, "k" * 40)
    add_backup_settings(project.config_path, f'manifest_key_env = "{HMAC_VARIABLE}"')
    made = monarch.backup(project.config(), "development", compression="none")
    archive = tmp_path / "backups" / made.archive_key
    data = bytearray(archive.read_bytes())
    at = data.index(b"real.example.com")
    data[at:at + 4] = b"fake"
    archive.write_bytes(bytes(data))

    result = monarch.verify(project.config(), made.name)
    with pytest.raises(ArchiveError) as refused:
        monarch.restore(project.config(), made.name, "development")

    assert not result.ok and any("SHA-256" in p for p in result.problems), result.problems
    # The archive is named as the damaged part (its own CRC catches it first here).
    assert "archive" in refused.value.message and "manifest was edited" not in \
        refused.value.message


def test_a_store_configured_to_encrypt_never_gets_a_plaintext_backup(
    project: Project, tmp_path: Path,
) -> None:
    seed_shop(project.db)
    add_backup_settings(project.config_path, 'encrypt_to = ["age1notarecipient"]')
    with pytest.raises(EncryptionError) as bad:
        monarch.backup(project.config(), "development")
    project.config_path.write_text(project.config_path.read_text().replace(
        'encrypt_to = ["age1notarecipient"]', f'passphrase_env = "{PASSPHRASE_VARIABLE}"'))
    with pytest.raises(EncryptionError) as unset:
        monarch.backup(project.config(), "development")

    assert "is not an age X25519 recipient" in bad.value.message
    assert "no backup was written" in unset.value.message
    assert project.store_keys() == []


def test_without_the_age_library_an_encrypting_store_fails_closed_with_one_line(
    project: Project, tmp_path: Path,
) -> None:
    seed_shop(project.db)
    encrypt_to(project.config_path, make_key(tmp_path).recipient)
    # A pyrage that cannot be imported, first on the path: the library is "not installed".
    blocker = tmp_path / "blocker" / "pyrage"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named pyrage')\n")
    env = environ()
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), env["PYTHONPATH"]])

    done = subprocess.run(
        [sys.executable, "-m", "monarch", "--config", str(project.config_path), "backup",
         "development"], cwd=project.root, env=env, capture_output=True, text=True,
        timeout=120, check=False)

    assert done.returncode == 1, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "pyrage" in error[0], done.stderr
    assert "monarch[encryption]" in done.stderr
    assert project.store_keys() == []


def test_a_passphrase_protected_backup_round_trips_and_a_wrong_passphrase_is_refused(
    project: Project, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_shop(project.db)
    before = snapshot(project.db)
    add_backup_settings(project.config_path, f'passphrase_env = "{PASSPHRASE_VARIABLE}"')
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "correct horse battery staple")
    made = monarch.backup(project.config(), "development")
    project.db.drop_collection("users")

    monkeypatch.setenv(PASSPHRASE_VARIABLE, "wrong")
    with pytest.raises(EncryptionError) as wrong:
        monarch.restore(project.config(), made.name, "development")
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "correct horse battery staple")
    monarch.restore(project.config(), made.name, "development")

    stored = manifest_path(project.root, made.name).read_text()
    assert "the passphrase does not open it" in wrong.value.message
    assert snapshot(project.db) == before
    assert "correct horse" not in stored
    assert json.loads(stored)["encryption"]["wrapped_key"].startswith(
        "-----BEGIN AGE ENCRYPTED FILE-----")


def test_copy_db_keeps_an_encrypted_backup(two_dbs: TwoDbs, tmp_path: Path) -> None:
    seed_shop(two_dbs.source)
    key = make_key(tmp_path)
    encrypt_to(two_dbs.config_path, key.recipient)

    copied = monarch.copy_db(two_dbs.config(), "development", "staging", keep_backup=True)
    assert copied.backup is not None
    kept = copied.backup
    archive = tmp_path / "backups" / kept.archive_key

    assert kept.archive_key.endswith(".age")
    assert all(word not in archive.read_bytes() for word in SECRET_WORDS)
    assert monarch.verify(two_dbs.config(), kept.name, identity=key.path).ok


def test_an_encrypted_backup_decrypts_without_monarch_and_mongorestore_restores_it(
    two_dbs: TwoDbs, tmp_path: Path, mongo_tools: MongoTools,
) -> None:
    """The documented path: age -d -i key.txt NAME.archive.gz.age | gunzip | mongorestore
    --archive (pyrage stands in for the age command, which is not installed here)."""
    seed_shop(two_dbs.source)
    key = make_key(tmp_path)
    encrypt_to(two_dbs.config_path, key.recipient)
    made = monarch.backup(two_dbs.config(), "development")

    plain = gzip.decompress(decrypt_file(tmp_path / "backups" / made.archive_key, key))
    client: MongoClient[dict[str, Any]] = MongoClient(two_dbs.server.uri)
    into = client[f"{two_dbs.source.name}_age"]
    args = [f"--uri={two_dbs.server.uri}", f"--nsFrom={two_dbs.source.name}.*",
            f"--nsTo={into.name}.*", "--quiet", "--archive"]
    if two_dbs.server.is_ferretdb:
        args.append("--noIndexRestore")  # FerretDB refuses the "ns" mongorestore adds
    try:
        done = subprocess.run([str(mongo_tools.mongorestore), *args], input=plain,
                              capture_output=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        assert {n: d for n, (d, _) in snapshot(into).items()} == \
            {n: d for n, (d, _) in snapshot(two_dbs.source).items()}
    finally:
        client.drop_database(into.name)
        client.close()


def test_an_unset_manifest_key_or_a_malformed_setting_stops_before_the_store_is_touched(
    project: Project,
) -> None:
    seed_shop(project.db)
    original = project.config_path.read_text()
    add_backup_settings(project.config_path, f'manifest_key_env = "{HMAC_VARIABLE}"')
    with pytest.raises(ConfigError) as unset:
        monarch.backup(project.config(), "development")
    project.config_path.write_text(original)
    add_backup_settings(project.config_path, 'passphrase_env = "hunter2 is my passphrase"')
    with pytest.raises(ConfigError) as value:
        monarch.backup(project.config(), "development")
    project.config_path.write_text(original)
    add_backup_settings(project.config_path, "encrypt_to = 42")
    with pytest.raises(ConfigError) as malformed:
        project.config()
    project.config_path.write_text(original)

    assert HMAC_VARIABLE in unset.value.message and "not set" in unset.value.message
    assert "hunter2" not in str(value.value) and "name of an environment variable" in \
        value.value.message
    assert "encrypt_to must be a list of age recipients" in malformed.value.message
    assert project.store_keys() == []


@pytest.mark.slow
def test_an_encrypted_backup_killed_at_any_moment_leaves_no_plaintext_and_nothing_listed(
    project: Project, tmp_path: Path,
) -> None:
    rng = random.Random(5)
    for name in ("events", "users", "orders", "notes"):
        project.db[name].insert_many({"i": i, "text": "x" * rng.randint(50, 400)}
                                     for i in range(10_000))
    key = make_key(tmp_path)
    encrypt_to(project.config_path, key.recipient)
    started = time.monotonic()
    finished = project.process("backup", "development", "--quiet")
    full = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    complete = finished.stdout.strip()

    for _ in range(6):
        child = project.spawn("backup", "development")
        time.sleep(rng.uniform(0.05, full * 1.1))
        child.kill()
        child.wait()
        listed = [b.name for b in monarch.list_backups(project.config())]
        assert set(listed) - {complete} == set() or all(
            monarch.verify(project.config(), n, identity=key.path).ok for n in listed)
        for path in (tmp_path / "backups").iterdir():  # temporary uploads included
            data = path.read_bytes()
            assert b"events" not in data and b"users" not in data, path.name


def test_restore_dry_run_opens_an_encrypted_backup_with_the_identity_only(
    project: Project, tmp_path: Path,
) -> None:
    seed_shop(project.db)
    key = make_key(tmp_path)
    encrypt_to(project.config_path, key.recipient)
    made = monarch.backup(project.config(), "development")

    with pytest.raises(EncryptionError):
        monarch.restore_preview(project.config(), made.name, "development")
    found = project.cli("restore", f"{made.name}:development", "--dry-run", "--identity",
                        str(key.path))

    assert found.code == 0, found.output
    assert "users" in found.stdout and key.secret not in found.output
