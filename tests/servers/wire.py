"""The benchmark-only MongoDB-wire server (``tests/servers/wire/``, Go, standard library only).

It serves a generated dataset from memory and accepts writes by counting them (keeping only
the first documents of each collection, for the tools' own bookkeeping), so reading from it or
writing to it measures the client alone. Built from the source beside this file with the
installed Go, cached under a name that changes with the source.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from tests.servers.cache import cache_dir, locked
from tests.servers.golang import build
from tests.servers.ports import free_port
from tests.servers.process import ServerProcess, StopsOnExit

SOURCE = Path(__file__).resolve().parent / "wire"
SHAPES = ("small", "large", "many", "huge")
DATABASE = "bench"


def wire_binary() -> Path:
    """The cached server binary, built the first time (seconds) and after any source change."""
    digest = hashlib.sha256()
    for path in [*sorted(SOURCE.glob("*.go")), SOURCE / "go.mod"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    binary = cache_dir() / f"wire-{digest.hexdigest()[:12]}" / "wire"
    if not binary.exists():
        with locked("wire"):
            if not binary.exists():
                build(SOURCE, ".", binary)
    return binary


@dataclass
class WireServer(StopsOnExit):
    """A running wire server; the generated collections are in database ``bench``."""

    uri: str
    process: ServerProcess

    def database_url(self, name: str = DATABASE) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    def log(self) -> str:
        """What the server wrote: unknown commands and unsupported filters show up here."""
        return self.process.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.stop()


def start_wire(workdir: Path, *, shape: str = "small", megabytes: float = 10.0,
               collections: int = 0) -> WireServer:
    """Start a wire server on a free port serving ``megabytes`` of BSON of ``shape``."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}")
    port = free_port()
    argv = [str(wire_binary()), f"--listen=127.0.0.1:{port}", f"--shape={shape}",
            f"--mb={megabytes}", f"--db={DATABASE}"]
    if collections:
        argv.append(f"--collections={collections}")
    process = ServerProcess("wire", argv, workdir)
    log = process.log_path

    def ready() -> bool:
        return bool(re.search(r"listening on", log.read_text(errors="replace")))

    process.wait_ready(ready, timeout=30)
    return WireServer(f"mongodb://127.0.0.1:{port}/", process)
