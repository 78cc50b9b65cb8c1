"""FerretDB v1 with its SQLite backend: a MongoDB-wire server that needs no other server."""

from __future__ import annotations

import os
from pathlib import Path

from tests.servers.cache import cache_dir, locked
from tests.servers.golang import build, module_copy
from tests.servers.process import ServerProcess

MODULE = "github.com/FerretDB/FerretDB"
VERSION = "v1.24.2"


def ferretdb_binary() -> Path:
    """The cached FerretDB binary, built from source the first time."""
    binary = cache_dir() / f"ferretdb-{VERSION}" / "ferretdb"
    if not binary.exists():
        with locked("ferretdb"):
            if not binary.exists():
                _build(binary)
    return binary


def _build(binary: Path) -> None:
    with module_copy(MODULE, VERSION) as source:
        # The binary reads this generated file at start and panics without it; the module
        # published on the proxy does not include it.
        (source / "build" / "version" / "version.txt").write_text(VERSION)
        build(source, "./cmd/ferretdb", binary)


def start_ferretdb(port: int, workdir: Path) -> ServerProcess:
    """Start FerretDB on ``127.0.0.1:port`` with its data and state under ``workdir``."""
    binary = ferretdb_binary()
    data = workdir / "data"
    data.mkdir()
    argv = [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{data}/",  # a folder: the URL must end with a slash
        f"--listen-addr=127.0.0.1:{port}",
        f"--state-dir={workdir}",
        # Without this every instance binds the same debug port and the second one dies.
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=warn",
    ]
    return ServerProcess("ferretdb", argv, workdir, env=os.environ | {"DO_NOT_TRACK": "1"})
