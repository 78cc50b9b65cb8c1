"""The command layer: every public function of monarch, with its real signature.

Each command takes the loaded :class:`~monarch.config.Config` first, checks what the
configuration alone can tell (names, protected environments), opens the store and the engines
once, passes them down to the feature packages (:mod:`monarch.migrations`,
:mod:`monarch.backups`) and closes them. ``monarch``'s top-level names come from here; the CLI
calls nothing else.

``migrations.py``: generate, list_migrations, migrate, migrate_one, rollback, unlock.
``history.py``: baseline, mark, accept, list_history. ``locking.py``: the environment's lock
that every command changing it holds, and the audit events they write.
``backups.py``: backup, list_backups, restore, copy_db, verify, prune, delete_backup, drop_db,
recover, generate_query_set, list_query_sets, check_backups;
``reporting.py``: the metrics file and webhook events of backup and verify.
"""
