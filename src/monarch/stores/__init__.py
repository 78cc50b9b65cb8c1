"""Backup stores, chosen by URL scheme through one registry: ``open_store(config.backups)``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from monarch.errors import ConfigError, NotImplementedYet

if TYPE_CHECKING:
    from monarch.config import StoreConfig
    from monarch.stores.base import Store

# URL scheme -> "module:class"; each class is built as cls(config: StoreConfig).
_REGISTRY = {
    "file": "monarch.stores.local:LocalStore",
    "memory": "monarch.stores.memory:MemoryStore",
    "s3": "monarch.stores.s3:S3Store",
}


def open_store(config: StoreConfig) -> Store:
    """Return the store for ``config.url`` (``file://``, ``s3://``, ``memory://``)."""
    config.require()  # a ${VAR} it needs that is not set: say so now
    scheme, sep, _ = config.url.partition("://")
    target = _REGISTRY.get(scheme) if sep else None
    if target is None:
        raise ConfigError(
            f"unknown backup store {config.url!r}",
            hint='use backups = "file://path/to/folder" or "s3://bucket/prefix"',
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise NotImplementedYet(
            f"the {scheme}:// backup store needs the Python package {exc.name!r}",
            hint="pip install 'monarch[s3]'" if scheme == "s3" else None,
        ) from exc
    store: Store = getattr(module, class_name)(config)
    return store
