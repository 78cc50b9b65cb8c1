"""Startup stays fast: no driver, S3 client or renderer is imported before a command needs it."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pymongo", "boto3", "botocore", "psycopg", "zstandard", "rich")


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    return {name for name in out if name.split(".")[0] in HEAVY}


def test_import_monarch_imports_no_driver() -> None:
    assert imported_after("import monarch") == set()


def test_building_the_cli_imports_no_driver() -> None:
    assert imported_after("import monarch.cli") == set()


def test_loading_config_imports_no_driver() -> None:
    assert imported_after("import monarch.config, monarch.stores, monarch.engines") == set()
