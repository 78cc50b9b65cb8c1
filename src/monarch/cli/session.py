"""What one CLI invocation shares between its commands: the config (loaded once, lazily)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import click

import monarch
from monarch.secrets import redact_text

if TYPE_CHECKING:
    from monarch.config import Config, Environment


class Session:
    """The global options of one ``monarch`` run, and the config they lead to."""

    current: ClassVar[Session | None] = None

    def __init__(self, config_path: str | None, traceback: bool) -> None:
        self.config_path = config_path
        self.traceback = traceback
        self._config: Config | None = None
        Session.current = self

    @property
    def config(self) -> Config:
        """The configuration, loaded on first use; its notices are printed once."""
        if self._config is None:
            self._config = monarch.load_config(self.config_path)
            for notice in self._config.notices:
                click.echo(f"Note: {notice}", err=True)
            _install_log_handler(self)
        return self._config

    def environment(self, name: str) -> Environment:
        return self.config.environment(name)

    def secrets(self) -> list[str]:
        """Every secret value of the loaded config, to scrub from anything printed: each
        password as written in its URL and decoded, the credentials substituted through
        ``${VAR}``, the backup store's keys (redact_text adds their percent-encoded forms)."""
        values = [os.environ[k] for k in ("PGPASSWORD",) if os.environ.get(k)]
        if self._config is None:
            return values
        for env in self._config.environments.values():
            values += env.secret_values()
        values += self._config.backups.secret_values()
        return list(dict.fromkeys(values))


def redacting(session: Session | None) -> Callable[[str], str]:
    """A function that scrubs the session's secrets from a text."""
    secrets = session.secrets() if session is not None else []
    return lambda text: redact_text(text, secrets)


class _RedactingFilter(logging.Filter):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage(), self.session.secrets())
        record.args = None
        return True


def _install_log_handler(session: Session) -> None:
    logger = logging.getLogger("monarch")
    if any(isinstance(f, _RedactingFilter) for h in logger.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_RedactingFilter(session))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
