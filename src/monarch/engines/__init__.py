"""Database engines, chosen by URL scheme through one registry (:mod:`.registry`).

``engine_for(environment)`` is the only way to get an engine. Engine modules are imported only when
an environment of theirs is used, so a MongoDB project never imports psycopg and vice versa.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from monarch.engines import registry
from monarch.errors import NotImplementedYet

if TYPE_CHECKING:
    from monarch.config import Environment
    from monarch.engines.base import Engine


def engine_for(environment: Environment) -> Engine:
    """Return a new, unconnected engine for ``environment``; connecting happens on first use."""
    row = registry.by_name(environment.engine)
    if row is None:
        raise NotImplementedYet(
            f"environment {environment.name!r} uses the {environment.engine} engine, "
            "which this version of monarch does not support yet",
            hint="use a mongodb:// environment, or upgrade monarch",
        )
    module_name, _, class_name = row.engine_class.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    engine: Engine = cls(environment)
    return engine
