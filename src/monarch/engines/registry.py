"""The engines monarch knows: one row of facts per engine, and nothing else.

This is the one place that says which engines exist. Everything that needs the list (URL
schemes in :mod:`monarch.config`, the engine classes in :func:`monarch.engines.engine_for`, the
``--engine`` choices, the migration templates, how messages name an engine) reads it here.

It is data, not code: it imports nothing of monarch's, so the configuration (the lowest layer)
can read it, and naming an engine's class here imports none of its driver. Callers ask a row
what they need to know (``noun``, ``legacy_backups``...), never compare an engine's name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineRow:
    """What monarch knows about one engine before loading any of its code."""

    name: str
    """The engine's name in configurations, manifests and ``--engine``: ``"mongo"``..."""
    display: str
    """How messages name it: ``"MongoDB"``."""
    schemes: tuple[str, ...]
    """The URL schemes of its environments (lower case), the usual one first."""
    engine_class: str
    """``"module:Class"`` of its :class:`~monarch.engines.base.Engine`, imported only when used."""
    default_port: int | None
    """The port of a host given without one (None: the URL names a file, not a server)."""
    noun: str
    """What its database holds, singular: ``"collection"`` or ``"table"``."""
    unit: str
    """What those hold, singular: ``"document"`` or ``"row"``."""
    migration_base: str
    """The base class (exported by ``monarch``) that generated migration files subclass."""
    template: str
    """Which template of :mod:`monarch.migrations.generate` a new Python migration uses."""
    template_example: str = ""
    """For the template: a statement that cannot run inside a transaction."""
    template_connection: str = ""
    """For the template: what ``self.conn`` is."""
    sql_files: bool = False
    """Migrations may be plain ``.sql`` files, run statement by statement on its connection."""
    legacy_backups: bool = False
    """monarch 0.0.x's backups (zips named after the database) are of this engine."""
    name_forbidden: str = ""
    """Characters a database name may not hold."""
    name_max_bytes: int | None = None
    """The size (UTF-8 bytes) a database name must stay under (None: no limit of its own)."""
    exact_counts: bool = True
    """Its backups' manifests count each table's rows exactly, and list exactly the tables a
    restore creates (PostgreSQL's hold the planner's estimates, and list partitions and
    materialized views beside the tables): a restore drill holds the restored database to
    them."""

    @property
    def file_url(self) -> bool:
        """Whether its URL names a file (``sqlite:///app.db``): no hosts, no login."""
        return self.default_port is None


_ROWS = (
    EngineRow(
        name="mongo",
        display="MongoDB",
        schemes=("mongodb", "mongodb+srv"),
        engine_class="monarch.engines.mongo:MongoEngine",
        default_port=27017,
        noun="collection",
        unit="document",
        # The name the original monarch used: generated files look like existing ones.
        migration_base="MongoBackedMigration",
        template="plain",
        legacy_backups=True,
        name_forbidden='/\\. "$\x00',
        name_max_bytes=64,
    ),
    EngineRow(
        name="postgres",
        display="PostgreSQL",
        schemes=("postgresql", "postgres"),
        engine_class="monarch.engines.postgres:PostgresEngine",
        default_port=5432,
        noun="table",
        unit="row",
        migration_base="PostgresMigration",
        template="transactional",
        template_example="CREATE INDEX CONCURRENTLY",
        template_connection="a psycopg 3 connection",
        sql_files=True,
        exact_counts=False,
    ),
    EngineRow(
        name="sqlite",
        display="SQLite",
        schemes=("sqlite",),
        engine_class="monarch.engines.sqlite:SQLiteEngine",
        default_port=None,
        noun="table",
        unit="row",
        migration_base="SQLiteMigration",
        template="transactional",
        template_example="VACUUM",
        template_connection="a sqlite3 connection",
        sql_files=True,
    ),
)
_BY_NAME = {row.name: row for row in _ROWS}
_BY_SCHEME = {scheme: row for row in _ROWS for scheme in row.schemes}


def engines() -> tuple[EngineRow, ...]:
    """Every engine, in the order messages list them."""
    return _ROWS


def by_name(name: str) -> EngineRow | None:
    """The engine called ``name`` (``"mongo"``), or None for a name no engine has."""
    return _BY_NAME.get(name)


def noun_of(name: str) -> str:
    """What engine ``name``'s database holds, singular (``"table"``); ``"collection"`` for a
    name no engine has (a manifest of monarch 0.0.x names none)."""
    row = _BY_NAME.get(name)
    return row.noun if row is not None else "collection"


def by_scheme(scheme: str) -> EngineRow | None:
    """The engine of URL scheme ``scheme`` (any case, without ``://``), or None."""
    return _BY_SCHEME.get(scheme.lower())
