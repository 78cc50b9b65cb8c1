"""Secrets as a type, and URLs shown without their passwords.

A :class:`Secret` prints as ``**redacted**`` wherever it ends up (repr, str, f-strings, logs,
exception text); only :meth:`Secret.reveal` gives the value, and only drivers should call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlencode

REDACTED = "**redacted**"

# Query parameters whose values are credentials in the URLs monarch accepts.
_SECRET_PARAMS = frozenset(
    {
        "password",
        "pass",
        "passwd",
        "secret",
        "token",
        "sessiontoken",
        "aws_secret_access_key",
        "aws_session_token",
        "authmechanismproperties",
        "tlscertificatekeyfilepassword",
        "sslpassword",
    }
)


class Secret:
    """A value that must never be shown. Compare and hash it; reveal it only to a driver."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value (for drivers and child-process environments only)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the value out of our hands; refuse it.
        raise TypeError("monarch secrets cannot be pickled")


def split_userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    """Split ``user:password@hosts`` into (user, password, hosts); a missing part is None."""
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    user, colon, password = userinfo.partition(":")
    return user, (password if colon else None), hosts


def redact_url(url: str) -> str:
    """Return ``url`` with any password (userinfo or secret query parameter) replaced."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    user, password, hosts = split_userinfo(netloc)
    if password is not None:
        netloc = f"{user}:{REDACTED}@{hosts}"
    path, qmark, query = tail.partition("?")
    if qmark:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if k.lower() in _SECRET_PARAMS else v) for k, v in pairs],
                safe="*",
            )
    return f"{scheme}{sep}{netloc}{slash}{path}{qmark}{query}"


def url_secrets(url: str) -> list[str]:
    """The secret values of a URL: its password and secret query parameters, as written in the
    URL and decoded (a password ``p%40ss`` is ``p@ss`` once a driver has read it)."""
    found: list[str] = []
    _, sep, rest = url.partition("://")
    if not sep:
        return found
    netloc, _, tail = rest.partition("/")
    _, password, _ = split_userinfo(netloc)
    if password:
        found += [password, unquote(password)]
    query = tail.partition("?")[2].partition("#")[0]
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and value and unquote_plus(key).lower() in _SECRET_PARAMS:
            found += [value, unquote_plus(value)]
    return list(dict.fromkeys(found))


def secret_forms(value: str) -> list[str]:
    """``value`` and the forms it takes inside a URL (percent-encoded, form-encoded)."""
    return list(dict.fromkeys((value, quote(value, safe=""), quote_plus(value, safe=""))))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (and its URL-quoted forms) in ``text``."""
    forms = {form for value in secrets if len(value) >= 3 for form in secret_forms(value)}
    # Longest first, so that a secret containing another is replaced whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def redact_exception(exc: BaseException, secrets: Iterable[str]) -> BaseException:
    """Scrub ``secrets`` from ``exc`` and every exception it chains, in place, and return it.

    Driver errors (psycopg quoting a malformed URL, say) may carry a password in their message;
    monarch chains them ``from`` its own errors, so a Python caller walking ``__cause__`` or
    ``__context__``, or a printed traceback, would see it. Their ``args``, notes and the
    message attributes monarch and the drivers use are rewritten.
    """
    values = [v for v in secrets if len(v) >= 3]
    if not values:
        return exc
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        _scrub_one(current, values)
        todo += [current.__cause__, current.__context__]
    return exc


def _scrub_one(exc: BaseException, values: list[str]) -> None:
    def clean(value: object) -> object:
        return redact_text(value, values) if isinstance(value, str) else value

    # An exception type that forbids rewriting its args keeps them.
    with contextlib.suppress(AttributeError, TypeError):
        exc.args = tuple(clean(arg) for arg in exc.args)
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        notes[:] = [clean(note) for note in notes]
    for attr in ("message", "hint", "_message", "msg", "strerror", "filename", "reason"):
        try:
            value = getattr(exc, attr, None)
            if isinstance(value, str):
                setattr(exc, attr, clean(value))
        except (AttributeError, TypeError):
            pass
