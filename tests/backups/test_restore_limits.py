"""Decompression bombs and lying sizes: a backup is held to its manifest's sizes while it is
read (reading stops at the first byte beyond them), a mongodump archive or directory to the
restore ceiling; either way the target is untouched and no staging is left."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import bson
import psycopg
import pytest

from monarch import backup, restore, verify
from monarch.archive import CollectionMeta
from monarch.archive.limits import LimitedReader, SizeLimitExceeded
from monarch.errors import ArchiveError, ConfigError
from monarch.sizes import parse_size
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    RAW,
    TwoDbs,
    data_collections,
    edit_manifest,
    leftovers,
    run_cli,
    seed,
    snapshot,
    two_dbs_fixture,
    write_archive,
)
from tests.backups.sql_support import (  # noqa: F401 - fixtures
    SQLProject,
    local_project_fixture,
)
from tests.engines.pg_helpers import contents, fill_rich
from tests.engines.sqlite_helpers import contents as lite_contents
from tests.engines.sqlite_helpers import fill as lite_fill
from tests.engines.sqlite_helpers import fill_other as lite_fill_other


def bomb_documents(megabytes: int) -> list[bytes]:
    """``megabytes`` MiB of documents that compress about a thousand times."""
    return [bson.encode({"_id": i, "pad": "a" * (1024 * 1024 - 64)}) for i in range(megabytes)]


def bomb_archive(path: Path, megabytes: int, db: str = "source") -> Path:
    meta = CollectionMeta.build(db, "boom")
    return write_archive(path, [(meta, bomb_documents(megabytes))], compression="gzip")


def database_state(two_dbs: TwoDbs) -> tuple[list[str], int]:
    """What the server holds for the target: its collections and their data size (monarch's
    bookkeeping, the environment's lock and audit trail, left out)."""
    names = data_collections(two_dbs.target)
    size = sum(len(raw.raw) for name in names
               for raw in two_dbs.target.get_collection(name, codec_options=RAW).find())
    return names, size


def database_names(url: str) -> list[str]:
    """Every database of the PostgreSQL server at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        return sorted(r[0] for r in conn.execute("SELECT datname FROM pg_database"))


def refused_untouched(two_dbs: TwoDbs, run: Callable[[], object], match: str) -> ArchiveError:
    before, state = snapshot(two_dbs.target), database_state(two_dbs)
    with pytest.raises(ArchiveError, match=match) as caught:
        run()
    assert snapshot(two_dbs.target) == before
    assert database_state(two_dbs) == state
    assert leftovers(two_dbs.target) == []
    return caught.value


def test_a_limited_reader_passes_the_limit_exactly_and_refuses_the_byte_after() -> None:
    assert LimitedReader(io.BytesIO(b"x" * 10), 10, what="w", why="y").read() == b"x" * 10
    with pytest.raises(SizeLimitExceeded, match=r"larger than y \(10 bytes\): reading "
                                                r"stopped at byte 11") as caught:
        LimitedReader(io.BytesIO(b"x" * 11), 10, what="w", why="y").read(100)
    assert caught.value.size == 11
    with pytest.raises(SizeLimitExceeded, match="truncated: it ends after 9 bytes, short of y"):
        LimitedReader(io.BytesIO(b"x" * 9), 10, what="w", why="y", exact=True).finish()
    assert [parse_size(s, "x") for s in ("512", "2K", "3m", "20GiB", "1tb")] == [
        512, 2048, 3 << 20, 20 << 30, 1 << 40]
    with pytest.raises(ConfigError, match="x: 'lots' is not a size"):
        parse_size("lots", "x")


def test_a_gzip_bomb_under_a_backups_name_is_refused_with_the_target_untouched(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=11)
    made = backup(two_dbs.config(), "development", compression="gzip")
    archive = two_dbs.root / "backups" / made.manifest.archive.key
    bomb_archive(archive, megabytes=12)
    assert archive.stat().st_size < made.manifest.archive.size  # smaller than the real one

    error = refused_untouched(two_dbs, lambda: restore(two_dbs.config(), made.name, "staging"),
                              "decompressed, is larger than the uncompressed size its manifest")
    assert isinstance(error, SizeLimitExceeded)
    assert error.size == made.manifest.archive.uncompressed_size + 1
    assert not verify(two_dbs.config(), made.name).ok


@pytest.mark.parametrize("factor", [10, 0.5])
def test_a_manifest_whose_uncompressed_size_is_wrong_is_refused_before_the_swap(
    two_dbs: TwoDbs, factor: float
) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=11)
    made = backup(two_dbs.config(), "development")
    manifest = two_dbs.root / "backups" / f"{made.name}.manifest.json"
    real = made.manifest.archive.uncompressed_size
    edit_manifest(manifest, lambda d: d["archive"].update(uncompressed_size=int(real * factor)))

    match = "short of" if factor > 1 else "larger than"
    refused_untouched(two_dbs, lambda: restore(two_dbs.config(), made.name, "staging"), match)
    checked = verify(two_dbs.config(), made.name)
    assert not checked.ok and any(match in p for p in checked.problems)


def test_a_mongodump_archive_over_the_ceiling_is_refused(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target, seed_value=11)
    bomb = bomb_archive(two_dbs.root / "bomb.archive.gz", megabytes=40)

    error = refused_untouched(
        two_dbs, lambda: restore(two_dbs.config(), str(bomb), "staging", max_size="8M"),
        "is larger than the restore size limit, --max-size .8,388,608 bytes.")
    assert error.hint is not None and "max_restore_size" in error.hint


def test_the_ceiling_comes_from_backups_max_restore_size_and_the_cli(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target, seed_value=11)
    bomb = bomb_archive(two_dbs.root / "bomb.archive.gz", megabytes=40)
    config = two_dbs.config_path
    config.write_text(config.read_text().replace(
        'backups = "file://', '[backups]\nmax_restore_size = "4M"\nurl = "file://', 1))
    before = snapshot(two_dbs.target)

    from_config = run_cli(two_dbs, "restore", f"{bomb}:staging")
    from_flag = run_cli(two_dbs, "restore", "--max-size", "2M", f"{bomb}:staging")
    fits = run_cli(two_dbs, "restore", "--max-size", "1G", f"{bomb}:staging")

    assert from_config.code == 1 and "[backups] max_restore_size (4,194,304" in from_config.stderr
    assert from_flag.code == 1 and "--max-size (2,097,152 bytes)" in from_flag.stderr
    assert "Try:" in from_flag.stderr
    assert fits.code == 0, fits.stderr
    assert two_dbs.target.boom.count_documents({}) == 40
    assert "boom" not in before


def test_a_directory_dump_over_the_ceiling_is_refused(two_dbs: TwoDbs) -> None:
    seed(two_dbs.target, seed_value=11)
    folder = two_dbs.root / "dump" / "source"
    folder.mkdir(parents=True)
    with gzip.open(folder / "boom.bson.gz", "wb", compresslevel=1) as out:
        for doc in bomb_documents(24):
            out.write(doc)

    refused_untouched(
        two_dbs,
        lambda: restore(two_dbs.config(), str(folder.parent), "staging", max_size="5M"),
        r"the dump .*source, decompressed \(reading .*boom.bson.gz\), is larger than the "
        r"restore size limit")


@pytest.mark.parametrize("factor", [10, 0.5])
def test_a_postgres_manifest_with_a_wrong_uncompressed_size_is_refused(
    local_project: SQLProject, factor: float
) -> None:
    p = local_project
    fill_rich(p.urls["development"], customers=20)
    fill_rich(p.urls["staging"], customers=3)
    made = backup(p.config(), "development")
    manifest = p.root / "backups" / f"{made.name}.manifest.json"
    real = made.manifest.archive.uncompressed_size
    edit_manifest(manifest, lambda d: d["archive"].update(uncompressed_size=int(real * factor)))
    before, databases = contents(p.urls["staging"]), database_names(p.urls["staging"])

    with pytest.raises(ArchiveError, match="short of" if factor > 1 else "larger than"):
        restore(p.config(), made.name, "staging")

    assert contents(p.urls["staging"]) == before
    assert database_names(p.urls["staging"]) == databases  # no scratch database left
    assert not verify(p.config(), made.name).ok


@pytest.mark.parametrize("factor", [10, 0.5])
def test_a_sqlite_manifest_with_a_wrong_uncompressed_size_is_refused(
    local_project: SQLProject, factor: float
) -> None:
    p = local_project
    lite_fill(p.lite(), rows=300)
    lite_fill_other(p.lite("lite_copy"))
    made = backup(p.config(), "lite")
    manifest = p.root / "backups" / f"{made.name}.manifest.json"
    real = made.manifest.archive.uncompressed_size
    edit_manifest(manifest, lambda d: d["archive"].update(uncompressed_size=int(real * factor)))
    before = lite_contents(p.lite("lite_copy"))

    with pytest.raises(ArchiveError, match="short of" if factor > 1 else "larger than"):
        restore(p.config(), made.name, "lite_copy")

    assert lite_contents(p.lite("lite_copy")) == before
    assert not verify(p.config(), made.name).ok
