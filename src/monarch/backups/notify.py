"""Webhook notifications: a JSON event POSTed when a backup or verify fails (or succeeds).

``--notify URL`` or ``[backups] notify_url`` (with ``notify_on = ["failure"]``, the default, or
``["failure", "success"]``). The POST is tried again, with growing pauses (:mod:`monarch.retry`),
while the receiver cannot be reached, times out, or answers 429 or 5xx, for at most
``patience`` seconds; each try waits at most ``timeout`` seconds.

A notification is a side effect: one that cannot be delivered never changes the command's
outcome. :func:`notify` returns what went wrong and logs it as a warning on the ``monarch``
logger (the CLI prints it on stderr), with the webhook shown as its scheme and host only: its
path or query is often its credential. The event never holds a secret: error texts are scrubbed
of every secret of the configuration before they are sent.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from monarch._version import __version__
from monarch.errors import ConfigError, MonarchError, ServerBusy
from monarch.retry import retrying
from monarch.secrets import Secret, redact_text

log = logging.getLogger("monarch.notify")

EVENTS = ("failure", "success")
DEFAULT_TIMEOUT = 5.0
DEFAULT_PATIENCE = 10.0


@dataclass(frozen=True)
class NotifyTarget:
    """Where events go and which ones. ``url`` is a Secret: it is never printed."""

    url: Secret
    on: frozenset[str] = frozenset({"failure"})
    timeout: float = DEFAULT_TIMEOUT
    """Seconds one try may take (connecting, sending, the answer)."""
    patience: float = DEFAULT_PATIENCE
    """Seconds of retries before giving up."""

    @property
    def shown(self) -> str:
        """The webhook as it may be printed: scheme and host, nothing that could be a token."""
        parts = urlsplit(self.url.reveal())
        host = parts.hostname or "?"
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/..."


def notify_target(options: Mapping[str, object],
                  url: str | Secret | NotifyTarget | None = None) -> NotifyTarget | None:
    """The target from ``url`` (a ``--notify`` URL or a ready target), else from ``[backups]``
    ``notify_url`` and ``notify_on``; None when neither is set. Bad values raise ConfigError."""
    if isinstance(url, NotifyTarget):
        return url
    configured = options.get("notify_url")
    chosen = url if url is not None else configured
    if chosen is None or chosen == "":
        return None
    secret = chosen if isinstance(chosen, Secret) else Secret(str(chosen))
    scheme = urlsplit(secret.reveal()).scheme
    if scheme not in ("http", "https") or not urlsplit(secret.reveal()).hostname:
        raise ConfigError("the notify URL must be an http:// or https:// URL",
                          hint="e.g. --notify https://hooks.example.com/monarch")
    on = options.get("notify_on") or ("failure",)
    words = (on,) if isinstance(on, str) else tuple(str(w) for w in on) \
        if isinstance(on, tuple | list) else (str(on),)
    unknown = [w for w in words if w not in EVENTS]
    if unknown:
        raise ConfigError(f"backups.notify_on takes {' and '.join(EVENTS)}, not {unknown[0]!r}",
                          hint='e.g. notify_on = ["failure", "success"]')
    return NotifyTarget(secret, frozenset(words))


def event(command: str, environment: str | None, *, ok: bool, secrets: Iterable[str],
          **details: object) -> dict[str, Any]:
    """The JSON event of one run: what, where, the outcome and ``details`` (backup name,
    sizes, the error's message and hint...). Every text in it is scrubbed of ``secrets``."""
    values = [s for s in secrets if s]
    doc: dict[str, Any] = {
        "source": "monarch", "monarch_version": __version__, "host": socket.gethostname(),
        "event": f"{command}.{'success' if ok else 'failure'}", "command": command,
        "environment": environment, "ok": ok,
    }
    doc.update(details)
    scrubbed: dict[str, Any] = _scrubbed(doc, values)
    return scrubbed


def notify(target: NotifyTarget | None, payload: dict[str, Any]) -> str | None:
    """POST ``payload`` to ``target`` if it wants this kind of event; return None when it was
    delivered (or not wanted), else the warning logged. Never raises for a delivery failure."""
    if target is None or ("success" if payload.get("ok") else "failure") not in target.on:
        return None
    body = json.dumps(payload, default=str).encode("utf-8")
    try:
        retrying(lambda: _post(target, body), patience=target.patience)
    except (ServerBusy, _Refused) as exc:
        warning = (f"warning: could not notify {target.shown} of {payload.get('event')}: "
                   f"{exc}; the {payload.get('command')} itself "
                   f"{'succeeded' if payload.get('ok') else 'failed as reported'}")
        log.warning(warning)
        return warning
    return None


def _post(target: NotifyTarget, body: bytes) -> None:
    """One try: ServerBusy for what another try may fix (no answer, 429, 5xx), _Refused for
    an answer that says no (other 4xx), which is not tried again."""
    request = urllib.request.Request(
        target.url.reveal(), data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"monarch/{__version__}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=target.timeout) as answer:
            answer.read(65536)
    except urllib.error.HTTPError as exc:
        message = f"the webhook answered HTTP {exc.code}"
        if exc.code == 429 or exc.code >= 500:
            raise ServerBusy(message) from None
        raise _Refused(message) from None
    except TimeoutError:
        raise ServerBusy(f"no answer within {target.timeout:g} s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ServerBusy(f"no answer within {target.timeout:g} s") from None
        text = getattr(reason, "strerror", None) or str(reason)
        raise ServerBusy(f"cannot reach it ({redact_text(text, [target.url.reveal()])})") from None


class _Refused(MonarchError):
    """A 4xx answer: trying again would not help, so it ends the retries at once."""


def _scrubbed(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, secrets) for v in value]
    return value
