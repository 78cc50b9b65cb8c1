"""What ``backup`` and ``verify`` tell the outside world about each run: Prometheus textfile
metrics (``metrics_file``) and a webhook event (``notify``).

Both are side effects of monitoring. Neither may change the outcome of the run it describes: a
metrics file that cannot be written or a webhook that is down is logged as a warning on the
``monarch`` logger (the CLI prints it on stderr), and the backup that succeeded still succeeds.
Configuration mistakes (a notify URL that is not http(s), an unknown ``notify_on`` word) are
raised before the run starts, as any other.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monarch.backups.metrics import Run, write_metrics
from monarch.backups.notify import NotifyTarget, event, notify, notify_target
from monarch.errors import MonarchError
from monarch.secrets import redact_url

if TYPE_CHECKING:
    from monarch.config import Config

log = logging.getLogger("monarch.reporting")


class RunReport:
    """One run of ``command`` for ``environment``: call :meth:`finished` or :meth:`failed`."""

    def __init__(self, config: Config, command: str, environment: str | None, *,
                 metrics_file: str | os.PathLike[str] | None,
                 notify_to: str | NotifyTarget | None) -> None:
        self._config = config
        self._command = command
        self._environment = environment
        self._metrics_file = metrics_file
        self._target = notify_target(config.backups.options, notify_to)
        self._started = datetime.now(UTC)
        self._clock = time.monotonic()
        self.warnings: list[str] = []
        """What could not be reported (also logged)."""

    def finished(self, *, ok: bool, size: int | None, documents: int | None,
                 **details: object) -> None:
        """The run ended with an answer (``ok`` False: a verify that found problems)."""
        self._report(ok, size, documents, details)

    def failed(self, exc: BaseException) -> None:
        """The run raised ``exc`` (an interrupt included)."""
        message = str(exc) if str(exc) else type(exc).__name__
        details: dict[str, Any] = {"error": message, "error_type": type(exc).__name__}
        if isinstance(exc, MonarchError) and exc.hint:
            details["hint"] = exc.hint
        elif isinstance(exc, KeyboardInterrupt):
            details["error"] = f"interrupted ({message})"
        self._report(False, None, None, details)

    def _report(self, ok: bool, size: int | None, documents: int | None,
                details: dict[str, object]) -> None:
        seconds = time.monotonic() - self._clock
        ended = datetime.now(UTC)
        environment = self._environment or "unknown"
        if self._metrics_file is not None:
            try:
                write_metrics(self._metrics_file, Run(self._command, environment, ok, ended,
                                                      seconds, size, documents))
            except MonarchError as exc:
                self._warn(f"warning: {exc}; the {self._command} itself "
                           f"{'succeeded' if ok else 'failed as reported'}")
        if self._target is not None:
            payload = event(
                self._command, self._environment, ok=ok, secrets=self._secrets(),
                started_at=self._started.isoformat(), finished_at=ended.isoformat(),
                duration_seconds=round(seconds, 3), size=size, documents=documents,
                store=redact_url(self._config.backups.url), **details,
            )
            warning = notify(self._target, payload)
            if warning:
                self.warnings.append(warning)

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        log.warning(text)

    def _secrets(self) -> list[str]:
        values = list(self._config.backups.secret_values())
        for environment in self._config.environments.values():
            values += environment.secret_values()
        if self._target is not None:
            values.append(self._target.url.reveal())
        return values
