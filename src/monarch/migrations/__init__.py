"""Migrations: plain-Python files that move an environment's data from one state to the next.

The public entry points are in :mod:`monarch.api.migrations` (also importable from ``monarch``).
Everything that does not depend on the database lives here, once: discovery of the files,
planning (order, drift, out-of-order), the lock's lease and heartbeat, and running with history
records. Engines only provide storage primitives (:mod:`monarch.history`).
"""
