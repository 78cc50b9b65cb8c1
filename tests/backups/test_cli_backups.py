"""The backup commands end to end: real database, real store, the real entry point."""

from __future__ import annotations

import json
import os
import re

import pytest

from monarch import list_backups
from tests.backups.conftest import LISTED_DAY, Project, write_config


def test_backup_list_verify_delete_round(shop: Project) -> None:
    made = shop.cli("backup", "development", "--name", "first")
    assert made.code == 0, made.output
    name = re.search(r"as (development-\d{8}T\d{6}Z-first)", made.stdout)
    assert name is not None
    assert "4 collections, 1,000 documents" in made.stdout
    assert f"monarch restore {name[1]}:ENV" in made.stdout

    listed = shop.cli("list_backups")
    assert listed.code == 0
    header, _rule, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "COLLECTIONS", "DOCUMENTS", "COMPRESSION",
                              "VERIFIED", "DRILLED"]
    assert row.startswith(name[1]) and " 4 " in row and "1,000" in row and "gzip" in row

    checked = shop.cli("verify", name[1])
    assert checked.code == 0 and checked.stdout.startswith(f"OK {name[1]}")

    deleted = shop.cli("delete_backup", name[1])
    assert deleted.code == 0
    assert shop.cli("list_backups").stdout.startswith("No backups in ")


def test_a_typical_listing_fits_in_100_columns(shop: Project) -> None:
    """The name says where and when: the table has no room to spend on saying it again."""
    for args in ((), (), ("--compression", "zstd")):
        assert shop.cli("backup", "development", *args).code == 0
    checked, *_ = (b.name for b in list_backups(shop.config()))
    assert shop.cli("verify", checked).code == 0

    listed = shop.cli("list_backups")

    assert listed.code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == 5 and max(len(line) for line in lines) <= 100, listed.stdout
    row = next(line for line in lines if line.startswith(checked))
    assert re.search(rf"  ok {LISTED_DAY}  +never$", row), row


def test_backup_quiet_prints_only_the_name(shop: Project) -> None:
    result = shop.cli("backup", "development", "--quiet")

    assert result.code == 0
    assert re.fullmatch(r"development-\d{8}T\d{6}Z\n", result.stdout)
    assert result.stderr == ""


def test_backup_reports_progress_on_stderr_when_not_a_terminal(shop: Project) -> None:
    result = shop.cli("backup", "development")

    assert "backup: 4 collections (~1,000 documents)" in result.stderr
    assert "  users: 300 documents" in result.stderr


def test_list_and_backup_json_for_scripts(shop: Project) -> None:
    made = json.loads(shop.cli("backup", "development", "--json", "--compression", "zstd").stdout)
    listed = json.loads(shop.cli("list_backups", "development", "--json").stdout)

    assert made["manifest"]["archive"]["compression"] == "zstd"
    assert [b["name"] for b in listed] == [made["name"]]
    assert listed[0]["documents"] == 1000 and listed[0]["compression"] == "zstd"


def test_verify_exits_1_and_says_what_is_wrong(shop: Project) -> None:
    name = shop.cli("backup", "development", "-q").stdout.strip()
    archive = shop.root / "backups" / f"{name}.archive.gz"
    archive.write_bytes(archive.read_bytes()[:-100])

    result = shop.cli("verify", name)

    assert result.code == 1
    assert result.stdout.startswith(f"FAILED {name}:")
    assert "  - archive: truncated" in result.stdout
    assert "  - SHA-256:" in result.stdout


def test_prune_dry_run_then_for_real(shop: Project) -> None:
    names = [shop.cli("backup", "development", "-q").stdout.strip() for _ in range(3)]

    dry = shop.cli("prune", "--keep-last", "1", "--dry-run")
    assert dry.code == 0
    assert f"keep    {names[-1]}  (last)" in dry.stdout
    assert f"remove {names[0]}" in dry.stdout
    assert "Dry run: kept 1, would remove 2 backup(s)" in dry.stdout
    assert len(list_backups(shop.config())) == 3

    real = shop.cli("prune", "--keep-last", "1")
    assert real.code == 0 and f"removed {names[0]}" in real.stdout
    assert [b.name for b in list_backups(shop.config())] == names[-1:]


def test_prune_without_a_rule_is_refused(shop: Project) -> None:
    result = shop.cli("prune")

    assert result.code == 2
    assert "Error: prune needs at least one rule" in result.stderr
    assert "Try: e.g. monarch prune --keep-last 7" in result.stderr


def test_generate_query_set_then_use_it(shop: Project) -> None:
    made = shop.cli("generate_query_set", "anon")
    assert made.code == 0 and "querysets/anon.py" in made.stdout
    path = shop.root / "querysets" / "anon.py"
    path.write_text(path.read_text().replace("EXCLUDE = []", 'EXCLUDE = ["logs"]'))

    result = shop.cli("backup", "development", "--query-set", "anon")

    assert result.code == 0, result.output
    assert "3 collections, 800 documents" in result.stdout
    assert "through query set 'anon'" in result.stdout


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (["backup", "staging"], "unknown environment 'staging'", "Try: add it under"),
        (["backup", "developmnt"], "unknown environment 'developmnt'",
         "Try: did you mean 'development'?"),
        (["backup"], "backup needs an environment", "Try: monarch backup development"),
        (["backup", "development", "--name", "a/b"], "invalid backup label 'a/b'", "Try: use up"),
        (["backup", "development", "--query-set", "nope"], "no query set 'nope'",
         "Try: create it with `monarch generate_query_set nope`"),
        (["list_backups", "stagin"], "unknown environment 'stagin'", "Try:"),
        (["verify"], "verify needs a backup name", "Try: monarch list_backups shows them"),
        (["verify", "yesterday"], "'yesterday' is not a backup name", "Try: backup names look"),
        (["verify", "development-20200101T000000Z"], "no backup 'development-20200101T000000Z'",
         "Try: run `monarch list_backups`"),
        (["delete_backup"], "delete_backup needs a backup name", "Try: monarch list_backups"),
        (["restore", "development-20200101T000000Z"], "restore takes BACKUP:ENV",
         "Try: monarch restore production-20260101T120000Z:development"),
        (["restore"], "restore takes BACKUP:ENV, e.g. production-20260101T120000Z:development; "
         "it is missing", "Try: monarch restore"),
        (["restore", ":development"], "restore takes BACKUP:ENV", "Try:"),
        (["restore", "development-20200101T000000Z:nowhere"], "unknown environment 'nowhere'",
         "Try:"),
        (["copy_db", "development"], "copy_db takes FROM:TO", "Try: monarch copy_db production:"),
        (["copy_db", "development:development"], "source and target are the same", "Try:"),
        (["copy_db", "development:qa"], "unknown environment 'qa'", "Try:"),
        (["generate_query_set", "../x"], "invalid query set name '../x'", "Try: use letters"),
    ],
)
def test_bad_input_gets_one_clear_error_and_a_next_step(
    project: Project, args: list[str], error: str, hint: str
) -> None:
    result = project.cli(*args)

    assert result.code == 2 or (result.code == 1 and "no backup" in error), result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: ") and error in lines[0], result.stderr
    assert lines[1].startswith(hint), result.stderr


def test_restore_into_a_protected_environment_needs_confirmation(shop: Project) -> None:
    name = shop.cli("backup", "development", "-q").stdout.strip()

    result = shop.cli("restore", f"{name}:production")

    assert result.code == 2
    assert "protected" in result.stderr and "Try: " in result.stderr


def test_the_password_never_appears_in_output_manifests_or_errors(
    project: Project, mongo_server: object
) -> None:
    if not getattr(mongo_server, "is_ferretdb", False):
        pytest.skip("needs a server that accepts any PLAIN credentials (FerretDB)")
    secret = "Sup3rS3cretPw"
    host_db = project.url.split("//", 1)[1]
    os.environ["MONARCH_TEST_PW"] = secret
    try:
        write_config(project.root, f"mongodb://app:${{MONARCH_TEST_PW}}@{host_db}"
                     "?authMechanism=PLAIN", {"url": f"file://{project.root / 'backups'}"})
        project.db.things.insert_one({"x": 1})
        made = project.cli("backup", "development", "--json")
        listed = project.cli("list_backups")
        write_config(project.root, "mongodb://app:${MONARCH_TEST_PW}@127.0.0.1:1/x",
                     {"url": f"file://{project.root / 'backups'}"})
        failed = project.cli("backup", "development")
    finally:
        del os.environ["MONARCH_TEST_PW"]

    assert made.code == 0, made.output
    assert failed.code == 1 and failed.stderr.startswith("Error: cannot reach MongoDB")
    stored = b"".join(p.read_bytes() for p in (project.root / "backups").iterdir())
    for text in (made.output, listed.output, failed.output, stored.decode("latin-1")):
        assert secret not in text
    assert json.loads(made.stdout)["manifest"]["source_host"] == host_db.split("/")[0]


def test_subprocess_entry_point_backs_up(shop: Project) -> None:
    result = shop.process("backup", "development", "--quiet")

    assert result.returncode == 0, result.stderr
    assert [b.name for b in list_backups(shop.config())] == [result.stdout.strip()]
