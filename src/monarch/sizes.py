"""Sizes as people write them in configuration and options: bytes, or a number with a binary
unit (``"8MiB"``, ``"8MB"``, ``"8M"`` and ``"8m"`` all mean 8 x 1024 x 1024, as the AWS CLI
reads them)."""

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
