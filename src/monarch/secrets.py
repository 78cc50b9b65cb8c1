"""Secrets as a type, and URLs shown without their passwords.

A :class:`Secret` prints as ``**redacted**`` wherever it ends up (repr, str, f-strings, logs,
exception text); only :meth:`Secret.reveal` gives the value, and only drivers should call it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode

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


def redact_text(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of each secret (and its URL-quoted form) in ``text``."""
    for value in secrets:
        if len(value) < 3:
            continue  # too short to scrub without mangling ordinary words
        for form in {value, quote(value, safe="")}:
            text = text.replace(form, REDACTED)
    return text
