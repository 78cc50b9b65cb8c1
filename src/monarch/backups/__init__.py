"""Backups over one engine and one store, written once for every engine: ``backup``,
``restore``, ``copy_db``, ``verify``, ``prune`` and ``delete_backup``.

``writer.py`` writes a backup (manifest last); ``stored.py`` reads one back, held to its
manifest; ``sources.py`` opens what a restore reads (a backup, a mongodump dump, a 0.0.x zip).
The commands that open the store and engines for these are in :mod:`monarch.api.backups`.
"""
