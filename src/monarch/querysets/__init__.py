"""Query sets: a project's ``querysets/*.py`` files that narrow and transform what a MongoDB
backup or copy_db reads.

``plan.py``: what a loaded query set says (:class:`~monarch.querysets.plan.QueryPlan`), the
type engines read; ``files.py``: loading, listing and generating the module kind;
``classes.py``: the class kind of monarch 0.0.x (``from monarch import QuerySet``).
"""
