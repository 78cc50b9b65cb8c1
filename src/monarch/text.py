"""Text people write (in monarch.toml, settings.py, options), turned into paths and URL parts.

The lowest layer: the configuration and the legacy settings reader both use it, and it imports
nothing of monarch's.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote


def user_path(text: str | os.PathLike[str]) -> Path:
    """``text`` as a path with ``~`` expanded; kept as written where there is no such home."""
    path = Path(text)
    try:
        return path.expanduser()
    except (RuntimeError, ValueError):  # ~nobody-here/..., or a name no user can have
        return path


def percent_encode(text: str, safe: str = "") -> str:
    """``text`` percent-encoded for a URL; undecodable bytes from the OS pass through as bytes."""
    return quote(text, safe=safe, errors="surrogatepass")
