"""monarch: migrate, back up, restore and copy databases between named environments.

The library is the product; the ``monarch`` command is a thin skin over it::

    import monarch

    config = monarch.load_config()
    result = monarch.migrate(config, "production", confirm="production")

Public names are imported on first use, so ``import monarch`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from monarch._version import __version__

_LAZY = {
    # configuration
    "load_config": "monarch.config",
    "Config": "monarch.config",
    "Environment": "monarch.config",
    # errors
    "MonarchError": "monarch.errors",
    "ConfigError": "monarch.errors",
    # project
    "init_project": "monarch.project",
    "list_environments": "monarch.project",
    # migrations
    "generate": "monarch.api.migrations",
    "list_migrations": "monarch.api.migrations",
    "migrate": "monarch.api.migrations",
    "migrate_one": "monarch.api.migrations",
    "rollback": "monarch.api.migrations",
    "unlock": "monarch.api.migrations",
    "Migration": "monarch.migrations.migration",
    "MongoMigration": "monarch.migrations.migration",
    "MongoBackedMigration": "monarch.migrations.migration",
    "PostgresMigration": "monarch.migrations.migration",
    "SQLiteMigration": "monarch.migrations.migration",
    # click's, re-exported as monarch 0.0.x did: its migration files import them from here
    "echo": "click",
    "progressbar": "click",
    # backups
    "backup": "monarch.api.backups",
    "list_backups": "monarch.api.backups",
    "restore": "monarch.api.backups",
    "copy_db": "monarch.api.backups",
    "verify": "monarch.api.backups",
    "prune": "monarch.api.backups",
    "delete_backup": "monarch.api.backups",
    "generate_query_set": "monarch.api.backups",
    "list_query_sets": "monarch.api.backups",
    "drop_db": "monarch.api.backups",
    "recover": "monarch.api.backups",
    "QuerySet": "monarch.querysets.classes",
}

__all__ = ["__version__", *_LAZY]  # noqa: PLE0604 - the lazy names are the API


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'monarch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
