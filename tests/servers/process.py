"""Child server processes: started with output to a log file, stopped for sure."""

from __future__ import annotations

import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class ServerStartError(RuntimeError):
    """A test server could not be built or started; the message says why."""


class StopsOnExit(ABC):
    """A started server that ``with`` stops on the way out, as its own ``stop()`` does."""

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess:
    """A running child server whose stdout and stderr go to ``<workdir>/<name>.log``.

    The output goes to a file rather than a pipe: nobody reads a pipe while tests run, and a
    full pipe would block the server.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=workdir,
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def tail(self, chars: int = 2000) -> str:
        """The end of the server's output, for error messages."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", "replace").strip()

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready()`` until it is true; raise with the output if the server dies or stalls."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.alive():
                raise ServerStartError(
                    f"{self.name} exited with status {self._popen.returncode} while starting:\n"
                    f"{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} did not answer within {timeout:.0f} s:\n{self.tail()}"
                )
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> None:
        """Terminate, and kill if it has not exited after ``grace`` seconds."""
        if self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(grace)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()
