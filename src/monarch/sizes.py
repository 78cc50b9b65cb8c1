"""Sizes as people write them in configuration and options: bytes, or a number with a binary
unit (``"8MiB"``, ``"8MB"``, ``"8M"`` and ``"8m"`` all mean 8 x 1024 x 1024, as the AWS CLI
reads them), and durations (``"26h"``, ``"1d12h"``)."""

from __future__ import annotations

import re

from monarch.errors import ConfigError

# Thirty digits are far beyond any real size, and keep int() within its digit limit.
_SIZE = re.compile(r"\s*(\d{1,30})\s*(?:([kmgt])i?b?|b)?\s*", re.IGNORECASE)
_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int, where: str) -> int:
    """Bytes in ``text``: a whole number with an optional unit K, M, G or T (powers of 1024,
    optionally followed by ``B`` or ``iB``). ``where`` names the setting in the ConfigError
    raised for anything else."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise ConfigError(f"{where}: {text!r} is not a size",
                          hint='write a whole number of bytes with an optional unit: "512M", '
                               '"20GiB"')
    unit = match.group(2)
    return int(match.group(1)) * _UNITS[unit.lower() if unit else None]


_DURATION = re.compile(r"(\d{1,9})\s*([smhdw])", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float, where: str) -> float:
    """Seconds in ``text``: a number of seconds, or amounts with units ``s``, ``m``, ``h``,
    ``d``, ``w`` (``"26h"``, ``"1d12h"``, ``"90m"``). ``where`` names the option in the
    ConfigError raised for anything else, zero and negative spans included."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        spaced = str(text).strip()
        if spaced.replace(".", "", 1).isdigit():
            seconds = float(spaced)
        elif spaced and _DURATION.sub("", spaced).strip() == "":
            seconds = float(sum(int(n) * _SECONDS[u.lower()]
                                for n, u in _DURATION.findall(spaced)))
        else:
            seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{where}: {text!r} is not a duration",
                          hint='write e.g. "26h", "90m", "2d" or "1d12h"')
    return seconds
