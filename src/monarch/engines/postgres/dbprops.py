"""A database's own properties, which a dump leaves out and a restore must keep.

pg_dump (without ``--create``) dumps what is *in* a database, not the database object: its
owner, encoding and locale, GRANTs on it, ``ALTER DATABASE ... SET`` settings, comment and
connection limit. A restore that swaps in a new database gives the new one the old one's
properties, so that only the contents change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

# Settings whose values are lists written in SQL list syntax: re-issued as they are stored.
_LIST_SETTINGS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "local_preload_libraries",
        "session_preload_libraries",
        "shared_preload_libraries",
    }
)


@dataclass(frozen=True)
class DatabaseProps:
    """What CREATE DATABASE needs (``row``: pg_database as JSON) and what is set afterwards."""

    row: dict[str, Any]
    owner: str
    tablespace: str
    acl: tuple[tuple[str | None, str, bool], ...] | None  # (grantee or None: PUBLIC, ...)
    settings: tuple[tuple[str | None, str], ...]  # (role or None: everyone, "name=value")
    comment: str | None


def read(conn: psycopg.Connection[Any], dbname: str) -> DatabaseProps | None:
    """The properties of database ``dbname``, or None if there is no such database."""
    found = conn.execute(
        "SELECT to_jsonb(d) || jsonb_build_object('encoding_name', "
        "pg_encoding_to_char(d.encoding)), pg_get_userbyid(d.datdba), t.spcname, d.datacl IS NULL, "
        "shobj_description(d.oid, 'pg_database') "
        "FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s",
        (dbname,),
    ).fetchone()
    if found is None:
        return None
    row, owner, tablespace, default_acl, comment = found
    acl = None
    if not default_acl:
        acl = tuple(
            (grantee, str(privilege), bool(grantable))
            for grantee, privilege, grantable in conn.execute(
                "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, "
                "a.privilege_type, a.is_grantable FROM pg_database d, aclexplode(d.datacl) a "
                "WHERE d.datname = %s ORDER BY 1 NULLS FIRST, 2",
                (dbname,),
            ).fetchall()
        )
    settings = tuple(
        (role, str(item))
        for role, config in conn.execute(
            "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
            "LEFT JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)",
            (dbname,),
        ).fetchall()
        for item in config or ()
    )
    return DatabaseProps(
        row=dict(row),
        owner=str(owner),
        tablespace=str(tablespace),
        acl=acl,
        settings=settings,
        comment=comment,
    )


def create_statement(name: str, like: DatabaseProps | None) -> sql.Composed:
    """CREATE DATABASE ``name`` with the encoding, locale and tablespace of ``like``."""
    from psycopg import sql

    parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))]
    if like is not None:
        row = like.row
        parts.append(
            sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                sql.Literal(_encoding(row)),
                sql.Literal(row["datcollate"]),
                sql.Literal(row["datctype"]),
            )
        )
        provider = row.get("datlocprovider")
        # PostgreSQL 15-16 call the ICU locale daticulocale, 17+ datlocale.
        locale = row.get("datlocale") or row.get("daticulocale")
        if provider == "i" and locale:
            parts.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(locale)))
        elif provider == "b" and locale:
            parts.append(
                sql.SQL("LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(sql.Literal(locale))
            )
        if like.tablespace != "pg_default":
            parts.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(like.tablespace)))
    return sql.SQL(" ").join(parts)


def apply(conn: psycopg.Connection[Any], name: str, props: DatabaseProps) -> None:
    """Give database ``name`` the owner, GRANTs, settings, comment and limit of ``props``.

    Runs inside the caller's transaction (the swap), so a failure here changes nothing.
    """
    from psycopg import sql

    db = sql.Identifier(name)
    current = conn.execute("SELECT current_user").fetchone()
    if current is None or current[0] != props.owner:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, sql.Identifier(props.owner))
        )
    if props.acl is not None:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(db, sql.Identifier(props.owner))
        )
        for grantee, privilege, grantable in props.acl:
            conn.execute(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(privilege),
                    db,
                    sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                    sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
                )
            )
    for role, item in props.settings:
        setting, _, value = item.partition("=")
        shown = sql.SQL(value) if setting in _LIST_SETTINGS else sql.Literal(value)
        target = (
            sql.SQL("ALTER DATABASE {}").format(db)
            if role is None
            else sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), db)
        )
        conn.execute(sql.SQL("{} SET {} TO {}").format(target, sql.Identifier(setting), shown))
    if props.comment is not None:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(db, sql.Literal(props.comment)))
    limit = int(props.row.get("datconnlimit", -1))
    if limit != -1:
        statement = sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}")
        conn.execute(statement.format(db, sql.Literal(limit)))


def _encoding(row: dict[str, Any]) -> str:
    return str(row["encoding_name"])
