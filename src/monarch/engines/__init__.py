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
    if registry.by_name(environment.engine) is None:
        raise NotImplementedYet(
            f"environment {environment.name!r} uses the {environment.engine} engine, "
            "which this version of monarch does not support yet",
            hint="use a mongodb:// environment, or upgrade monarch",
        )
    return engine_class(environment.engine)(environment)  # type: ignore[call-arg]


def engine_class(name: str) -> type[Engine]:
    """The class of engine ``name`` (for what needs no database: checking a backup's stream)."""
    row = registry.by_name(name)
    if row is None:
        raise NotImplementedYet(f"the {name} engine is not supported by this version of monarch",
                                hint="upgrade monarch")
    module_name, _, class_name = row.engine_class.partition(":")
    cls: type[Engine] = getattr(importlib.import_module(module_name), class_name)
    return cls
