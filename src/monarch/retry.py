"""Trying again when a server is busy for a moment (:class:`~monarch.errors.ServerBusy`).

Only for requests that are safe to repeat (reads, and writes that replace a value by a key):
the failed attempt may have been applied before its error arrived.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from monarch.errors import ServerBusy

T = TypeVar("T")

FIRST = 0.05  # seconds before the first retry; doubled each time
LONGEST = 2.0
PATIENCE = 10.0  # seconds of retries before the busy error is raised after all


def backoff(failures: int) -> float:
    """The pause before retry number ``failures`` (1, 2, ...), with jitter against lockstep."""
    pause: float = min(LONGEST, FIRST * 2.0 ** (failures - 1))
    return pause * random.uniform(0.7, 1.3)


def retrying(call: Callable[[], T], *, patience: float = PATIENCE) -> T:
    """``call()``, retried with growing pauses while it raises ServerBusy, for ``patience`` s."""
    deadline = time.monotonic() + patience
    failures = 0
    while True:
        try:
            return call()
        except ServerBusy:
            failures += 1
            if time.monotonic() >= deadline:
                raise
            time.sleep(backoff(failures))
