"""Backups: backup, list, verify, prune and delete over an engine and a store (restore and copy_db
live beside them in :mod:`monarch.backups.restore`).

The public functions are in :mod:`monarch.backups.api` and re-exported lazily by :mod:`monarch`.
Modules here import nothing heavy at import time.
"""
