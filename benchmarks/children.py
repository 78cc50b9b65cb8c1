"""How the benchmarks start monarch: as an installed copy starts, its modules compiled beforehand.

Installing a package compiles its modules; a checkout run where ``PYTHONDONTWRITEBYTECODE`` is
set (some machines set it for everyone) compiles every module again at each start, which cost a
short ``monarch restore`` over a second. So the children run with bytecode allowed, and the
checkout's modules are compiled once before anything is measured.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def environment() -> dict[str, str]:
    """The environment of a measured child: monarch from this checkout, compiled."""
    compileall.compile_dir(ROOT / "src", quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
