"""monarch: migrate, back up, restore and copy databases between named environments.

The library is the product; the ``monarch`` command is a thin skin over it::

    import monarch

    config = monarch.load_config()
    result = monarch.migrate(config, "production", confirm="production")

Public names are imported on first use, so ``import monarch`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from monarch._version import __version__

if TYPE_CHECKING:  # what type checkers see of the lazy names below (and the CLI uses)
    from click import echo as echo
    from click import progressbar as progressbar

    from monarch.api.backups import backup as backup
    from monarch.api.backups import copy_db as copy_db
    from monarch.api.backups import delete_backup as delete_backup
    from monarch.api.backups import drop_db as drop_db
    from monarch.api.backups import generate_query_set as generate_query_set
    from monarch.api.backups import list_backups as list_backups
    from monarch.api.backups import list_query_sets as list_query_sets
    from monarch.api.backups import prune as prune
    from monarch.api.backups import recover as recover
    from monarch.api.backups import restore as restore
    from monarch.api.backups import restore_preview as restore_preview
    from monarch.api.backups import verify as verify
    from monarch.api.drills import drill as drill
    from monarch.api.migrations import generate as generate
    from monarch.api.migrations import list_migrations as list_migrations
    from monarch.api.migrations import migrate as migrate
    from monarch.api.migrations import migrate_one as migrate_one
    from monarch.api.migrations import rollback as rollback
    from monarch.api.migrations import unlock as unlock
    from monarch.api.rehearsal import rehearse as rehearse
    from monarch.config import Config as Config
    from monarch.config import Environment as Environment
    from monarch.config import load_config as load_config
    from monarch.engines.selection import Selection as Selection
    from monarch.errors import ConfigError as ConfigError
    from monarch.errors import MonarchError as MonarchError
    from monarch.migrations.migration import Migration as Migration
    from monarch.migrations.migration import MongoBackedMigration as MongoBackedMigration
    from monarch.migrations.migration import MongoMigration as MongoMigration
    from monarch.migrations.migration import PostgresMigration as PostgresMigration
    from monarch.migrations.migration import SQLiteMigration as SQLiteMigration
    from monarch.project import init_project as init_project
    from monarch.project import list_environments as list_environments
    from monarch.querysets.classes import QuerySet as QuerySet

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
    "rehearse": "monarch.api.rehearsal",
    "baseline": "monarch.api.history",
    "mark": "monarch.api.history",
    "accept": "monarch.api.history",
    "list_history": "monarch.api.history",
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
    "restore_preview": "monarch.api.backups",
    "Selection": "monarch.engines.selection",
    "copy_db": "monarch.api.backups",
    "verify": "monarch.api.backups",
    "drill": "monarch.api.drills",
    "prune": "monarch.api.backups",
    "delete_backup": "monarch.api.backups",
    "generate_query_set": "monarch.api.backups",
    "list_query_sets": "monarch.api.backups",
    "drop_db": "monarch.api.backups",
    "recover": "monarch.api.backups",
    "check_backups": "monarch.api.backups",
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
