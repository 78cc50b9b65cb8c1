"""Download Go modules and build their commands, for servers that ship only as Go source."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.servers.process import ServerStartError

# Pure-Go builds with the installed toolchain only (never a downloaded one). The checksum
# database may be out of reach: each module's own go.sum still checks its dependencies.
GO_ENV = {
    "GOTOOLCHAIN": "local",
    "GONOSUMDB": "github.com/FerretDB,github.com/mongodb",
    "GOFLAGS": "-mod=mod",
    "CGO_ENABLED": "0",
}


def go_command() -> str:
    """The ``go`` executable, also found in its usual place when not on PATH."""
    found = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if found is None:
        raise ServerStartError(
            "Go is needed to build the test servers (FerretDB, mongo-tools); install Go >= 1.24"
        )
    return found


def run_go(args: Sequence[str], cwd: Path) -> str:
    """Run ``go args...`` in ``cwd`` and return its stdout; raise with its stderr if it fails."""
    result = subprocess.run(
        [go_command(), *args],
        cwd=cwd,
        env=os.environ | GO_ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServerStartError(
            f"go {' '.join(args)} failed (status {result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result.stdout


def download_module(module: str, version: str) -> Path:
    """Fetch ``module@version`` into the Go module cache and return its (read-only) folder."""
    with tempfile.TemporaryDirectory(prefix="monarch-go-") as outside_any_module:
        out = run_go(["mod", "download", "-json", f"{module}@{version}"], Path(outside_any_module))
    info = json.loads(out)
    if "Error" in info:
        raise ServerStartError(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


@contextmanager
def module_copy(module: str, version: str) -> Iterator[Path]:
    """A writable copy of ``module@version``'s source, removed afterwards.

    The module cache is read-only, and builds here need to add files (FerretDB's version file).
    """
    source = download_module(module, version)
    with tempfile.TemporaryDirectory(prefix="monarch-gosrc-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy)
        for root, dirs, files in os.walk(copy):
            for name in [*dirs, *files]:
                path = Path(root, name)
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        Path(copy).chmod(copy.stat().st_mode | stat.S_IWUSR)
        yield copy


def build(source: Path, package: str, output: Path, ldflags: str = "") -> None:
    """``go build`` ``package`` of ``source`` into ``output``, which appears only when complete."""
    print(f"building {output} (once; may take minutes)", file=sys.stderr, flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    args = ["build", "-trimpath", "-buildvcs=false", "-o", str(partial)]
    if ldflags:
        args += ["-ldflags", ldflags]
    try:
        run_go([*args, package], source)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
