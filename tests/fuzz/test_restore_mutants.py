"""End to end: ``restore`` of a mutated backup or dump into a real database either refuses it
with a monarch error and leaves the target exactly as it was (same content hash, nothing of
monarch's left in it), or the damage left a valid input and the restore completes.

Fewer cases than the parser run (each is a real restore), on every engine: MongoDB (monarch's
backups and mongodump's archives and directories), SQLite and PostgreSQL (their own formats).
The sources are made afresh each time (new ids, new backup names), so how many mutants happen
to stay valid varies; the counts asked for are well below what a run gives.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import monarch
from monarch.errors import MonarchError
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    leftovers,
    snapshot,
    two_dbs_fixture,
)
from tests.backups.sql_support import SQLProject, local_project_fixture  # noqa: F401 - fixtures
from tests.engines.pg_helpers import contents as pg_contents
from tests.engines.pg_helpers import execute, fill_old, fill_rich
from tests.engines.sqlite_helpers import contents as lite_contents
from tests.engines.sqlite_helpers import fill as lite_fill
from tests.engines.sqlite_helpers import fill_other as lite_fill_other
from tests.fuzz.mutate import case_rng
from tests.fuzz.samples import Tree, mongodump, read_tree, seed_database, write_tree
from tests.fuzz.targets import ARCHIVE, compressed_mutant, mutate_backup, mutate_tree
from tests.servers import MongoTools

SEED = 20260102


def content_hash(value: Any) -> str:
    """A hash of a database snapshot (any repr-stable structure)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()


class Trial:
    """Runs restore cases, checks the target after each, and counts outcomes."""

    def __init__(self, state: Callable[[], Any], reset: Callable[[], None]) -> None:
        self._state = state
        self._reset = reset
        self.before = content_hash(state())
        self.outcomes: Counter[str] = Counter()

    def restore(self, case: int, config: monarch.Config, source: str, env: str) -> None:
        try:
            monarch.restore(config, source, env)
        except MonarchError as exc:
            self.outcomes[type(exc).__name__] += 1
            assert content_hash(self._state()) == self.before, f"case {case}: {exc}"
            return
        except Exception as exc:
            raise AssertionError(f"case {case}: not a monarch error: {exc!r}") from exc
        # The damage left a valid input: the restore did its job; put the target back.
        self.outcomes["accepted"] += 1
        self._reset()
        self.before = content_hash(self._state())

    def __repr__(self) -> str:
        return f"Trial({dict(self.outcomes)})"

    @property
    def refused(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k != "accepted")


def backups_in(config: monarch.Config, store: Path) -> list[tuple[Path, Path, Tree]]:
    """Each backup's manifest path, archive path and pristine files."""
    found = []
    for info in monarch.list_backups(config):
        manifest = store / f"{info.name}.manifest.json"
        archive = store / info.manifest.archive.key
        tree = {"manifest.json": manifest.read_bytes(), "archive": archive.read_bytes()}
        found.append((manifest, archive, tree))
    return found


def run_backup_cases(trial: Trial, config: monarch.Config, store: Path, env: str,
                     cases: int) -> None:
    """Damage one stored backup per case (its manifest, its archive or both) and restore it."""
    stored = backups_in(config, store)
    for case in range(cases):
        rng = case_rng(SEED, case)
        manifest, archive, pristine = rng.choice(stored)
        mutant = mutate_backup(rng, pristine, [])
        manifest.write_bytes(mutant["manifest.json"])
        archive.write_bytes(mutant["archive"])
        name = manifest.name.removesuffix(".manifest.json")
        try:
            trial.restore(case, config, name, env)
        finally:
            manifest.write_bytes(pristine["manifest.json"])
            archive.write_bytes(pristine["archive"])


def test_restoring_mutated_mongo_backups_leaves_the_target_untouched(two_dbs: TwoDbs) -> None:
    seed_database(two_dbs.source_url)
    config = two_dbs.config()
    for method in ("none", "gzip", "zstd"):
        monarch.backup(config, "development", compression=method)
    two_dbs.target.old.insert_many([{"n": i} for i in range(20)])

    def reset() -> None:
        two_dbs.server.drop_database(two_dbs.target.name)
        two_dbs.target.old.insert_many([{"n": i} for i in range(20)])

    trial = Trial(lambda: (snapshot(two_dbs.target), leftovers(two_dbs.target)), reset)
    run_backup_cases(trial, config, two_dbs.root / "backups", "staging", cases=15)

    assert trial.refused >= 5, trial.outcomes


def test_restoring_mutated_mongodump_outputs_leaves_the_target_untouched(
    two_dbs: TwoDbs, mongo_tools: MongoTools
) -> None:
    seed_database(two_dbs.source_url)
    work = two_dbs.root / "dumps"
    work.mkdir()
    mongodump(mongo_tools, f"--uri={two_dbs.source_url}", f"--archive={work / 'plain'}")
    mongodump(mongo_tools, f"--uri={two_dbs.source_url}", f"--archive={work / 'gz'}", "--gzip")
    mongodump(mongo_tools, f"--uri={two_dbs.source_url}", f"--out={work / 'dir'}", "--gzip")
    dump = read_tree(work / "dir")
    archives = {"plain": (work / "plain").read_bytes(), "gz": (work / "gz").read_bytes()}
    two_dbs.target.old.insert_many([{"n": i} for i in range(20)])

    def reset() -> None:
        two_dbs.server.drop_database(two_dbs.target.name)
        two_dbs.target.old.insert_many([{"n": i} for i in range(20)])

    trial = Trial(lambda: (snapshot(two_dbs.target), leftovers(two_dbs.target)), reset)
    config = two_dbs.config()
    for case in range(12):
        rng = case_rng(SEED, case)
        path = work / f"mutant-{case}"
        kind = ("plain", "gz", "dir")[case % 3]
        if kind == "dir":
            write_tree(path, mutate_tree(rng, dump, []))
        elif kind == "gz":
            path.write_bytes(compressed_mutant("gzip")(rng, archives["gz"], []))
        else:
            path.write_bytes(ARCHIVE.mutate(rng, archives["plain"], []))
        trial.restore(case, config, str(path), "staging")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    assert trial.refused >= 4, trial.outcomes


def test_restoring_mutated_sqlite_backups_leaves_the_target_untouched(
    local_project: SQLProject,
) -> None:
    p = local_project
    lite_fill(p.lite(), rows=50)
    lite_fill_other(p.lite("lite_copy"))
    config = p.config()
    for method in ("none", "zstd"):
        monarch.backup(config, "lite", compression=method)

    def reset() -> None:
        p.lite("lite_copy").unlink()
        lite_fill_other(p.lite("lite_copy"))

    trial = Trial(lambda: lite_contents(p.lite("lite_copy")), reset)
    run_backup_cases(trial, config, p.root / "backups", "lite_copy", cases=10)

    assert trial.refused >= 3, trial.outcomes


def test_restoring_mutated_postgres_backups_leaves_the_target_untouched(
    local_project: SQLProject,
) -> None:
    p = local_project
    fill_rich(p.urls["development"], customers=20)
    fill_old(p.urls["staging"])
    config = p.config()
    monarch.backup(config, "development", compression="none")
    monarch.backup(config, "development", compression="gzip")

    def reset() -> None:
        execute(p.urls["staging"], "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        fill_old(p.urls["staging"])

    trial = Trial(lambda: pg_contents(p.urls["staging"]), reset)
    run_backup_cases(trial, config, p.root / "backups", "staging", cases=6)

    assert trial.refused >= 1, trial.outcomes
