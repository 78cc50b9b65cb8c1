"""mongodump and mongorestore 100.10.0, built from source, plus the module's sample dumps."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.servers.cache import cache_dir, locked
from tests.servers.golang import build, module_copy

MODULE = "github.com/mongodb/mongo-tools"
RELEASE = "100.10.0"
# Release tags are not semver, so the module proxy knows the release by this pseudo-version.
VERSION = "v0.0.0-20240724183527-6d4f001be3fc"
LDFLAGS = f"-X main.VersionStr={RELEASE} -X main.GitCommit=6d4f001be3fc"


@dataclass(frozen=True)
class MongoTools:
    """Paths of the built tools.

    ``testdata`` is a copy of the module's ``mongorestore/testdata``: dump folders and
    ``.archive`` files (``test.bar.archive``, ``dump-w-oplog.archive``, the deliberately broken
    ``bad-format.archive``) written by real mongodump releases.
    """

    mongodump: Path
    mongorestore: Path
    testdata: Path

    def complete(self) -> bool:
        return all(path.exists() for path in (self.mongodump, self.mongorestore, self.testdata))


def mongo_tools() -> MongoTools:
    """The cached tools, built the first time (the built ones, even if others are on PATH)."""
    home = cache_dir() / f"mongo-tools-{RELEASE}"
    tools = MongoTools(home / "mongodump", home / "mongorestore", home / "testdata")
    if not tools.complete():
        with locked("mongo-tools"):
            if not tools.complete():
                _build(tools)
    return tools


def _build(tools: MongoTools) -> None:
    with module_copy(MODULE, VERSION) as source:
        if not tools.testdata.exists():
            partial = tools.testdata.with_name(f".testdata.{os.getpid()}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(source / "mongorestore" / "testdata", partial)
            partial.rename(tools.testdata)
        for binary in (tools.mongodump, tools.mongorestore):
            if not binary.exists():
                build(source, f"./{binary.name}/main", binary, LDFLAGS)
