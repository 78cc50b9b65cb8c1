"""What part of a dump a restore (or copy_db) takes, and under which names: :class:`Selection`.

One value, given to every engine's ``restore`` and ``dump``: engines never see command-line
options, and the backups layer never branches on the engine. Names are matched with shell
globs (``*``, ``?``, ``[...]``, as :mod:`fnmatch` reads them, case-sensitively), against a
collection's name (MongoDB), a table's name or ``schema.table`` (PostgreSQL), a table's name
(SQLite).

Renames, applied in this order, the first that matches wins:

- ``renames``: exact pairs, ``users=users_restored``;
- ``ns_from``/``ns_to``: mongorestore's namespace patterns, paired by position. A pattern may
  name the dump's database (``shop.users``; any ``db.`` prefix in ``ns_to`` is the target's own
  database and is dropped) and may hold ``$var$`` variables, each matching any text that the
  same ``$var$`` in ``ns_to`` repeats (``shop.$c$`` -> ``shop.old_$c$``); ``*`` is accepted
  too, repeated in order.

A renamed name never replaces a collection or table the target already has unless
``replace_existing`` is set; a selected name kept as it is replaces the target's one, as a
restore does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monarch.errors import UsageError

_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\$|\*")


@dataclass(frozen=True)
class Selection:
    """Which names of a dump to restore, and as what (see the module docstring).

    ``include``: glob patterns; empty means every name. ``exclude``: glob patterns taken out
    after ``include``. ``schemas``: PostgreSQL schemas (whole), empty means every one.
    The default value selects everything under its own name: a whole-database restore.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    ns_from: tuple[str, ...] = ()
    ns_to: tuple[str, ...] = ()
    replace_existing: bool = False

    def __post_init__(self) -> None:
        if len(self.ns_from) != len(self.ns_to):
            raise UsageError(
                f"--ns-from and --ns-to come in pairs; got {len(self.ns_from)} --ns-from and "
                f"{len(self.ns_to)} --ns-to",
                hint="e.g. --ns-from 'shop.$c$' --ns-to 'shop.restored_$c$'",
            )
        for old, new in self.renames:
            if not old or not new:
                raise UsageError(f"--rename takes OLD=NEW; got {old!r}={new!r}",
                                 hint="e.g. --rename users=users_restored")
        for source, target in zip(self.ns_from, self.ns_to, strict=True):
            wanted, used = _variables(source), _variables(target)
            named = {v for v in wanted if v != "*"}
            if not {v for v in used if v != "*"} <= named or used.count("*") > wanted.count("*"):
                raise UsageError(f"--ns-to {target!r} uses a variable that --ns-from "
                                 f"{source!r} does not set")

    @classmethod
    def from_options(
        cls,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        schemas: Sequence[str] = (),
        renames: Sequence[str] = (),
        ns_from: Sequence[str] = (),
        ns_to: Sequence[str] = (),
        replace_existing: bool = False,
    ) -> Selection:
        """The selection command-line options ask for; ``renames`` as ``OLD=NEW`` strings."""
        return cls(tuple(include), tuple(exclude), tuple(schemas), parse_renames(renames),
                   tuple(ns_from), tuple(ns_to), replace_existing)

    @property
    def whole(self) -> bool:
        """True when this selects everything under its own name (a whole-database restore)."""
        return not (self.include or self.exclude or self.schemas or self.renames
                    or self.ns_from)

    @property
    def partial(self) -> bool:
        """True when only some names are selected: the rest of the target stays untouched.

        A selection that only renames is partial too: it adds beside the live data.
        """
        return not self.whole

    def selects(self, name: str, schema: str | None = None) -> bool:
        """Whether the dump's ``name`` (in ``schema``, for PostgreSQL) is restored."""
        if self.schemas and (schema is None or schema not in self.schemas):
            return False
        candidates = _candidates(name, schema)
        if self.include and not any(_matches(c, p) for c in candidates for p in self.include):
            return False
        return not any(_matches(c, p) for c in candidates for p in self.exclude)

    def target_name(self, name: str, database: str = "") -> str:
        """The name the dump's ``name`` gets in the target (itself unless renamed).

        ``database`` is the dump's database, which a namespace pattern may name.
        """
        for old, new in self.renames:
            if old == name:
                return new
        for source, target in zip(self.ns_from, self.ns_to, strict=True):
            for candidate in ([f"{database}.{name}", name] if database else [name]):
                found = _translate(candidate, source, target)
                if found is None:
                    continue
                prefix = f"{database}."
                if candidate != name and found.startswith(prefix):
                    found = found[len(prefix):]
                elif candidate != name and "." in found:
                    found = found.partition(".")[2]
                return found
        return name

    def qualified_target(self, qualified: str) -> str:
        """``schema.table`` in the target of the dump's ``schema.table`` (PostgreSQL).

        A rename may name the qualified table or the bare one, and give a bare new name (the
        same schema) or a qualified one (another schema).
        """
        schema, table = split_qualified(qualified)
        renamed = self.target_name(qualified)
        if renamed == qualified:
            renamed = self.target_name(table)
            if renamed == table:
                return qualified
        return renamed if "." in renamed or schema is None else f"{schema}.{renamed}"

    def require_matches(self, names: Iterable[str], noun: str, where: str, *,
                        qualified: bool = False) -> None:
        """Refuse an ``include`` pattern, schema or rename that selects nothing of ``names``.

        A typo must not turn into a restore of nothing that reports success. ``qualified``:
        the names are ``schema.table`` (PostgreSQL), matched as :meth:`selects` does.
        """
        available = sorted(set(names))
        split = [split_qualified(n) if qualified else (None, n) for n in available]
        hint = f"{where} holds: {', '.join(available) or 'nothing'}"
        for pattern in self.include:
            if not any(_matches(c, pattern) for schema, name in split
                       for c in _candidates(name, schema)):
                raise UsageError(f"{pattern!r} matches no {noun} of {where}; nothing was "
                                 "restored", hint=hint)
        for schema in self.schemas:
            if not any(s == schema for s, _ in split):
                raise UsageError(f"{where} has no schema {schema!r}; nothing was restored",
                                 hint=hint)
        for old, _ in self.renames:
            if old not in available and not any(name == old for _, name in split):
                raise UsageError(f"--rename {old}=...: {where} has no {noun} {old!r}; nothing "
                                 "was restored", hint=hint)

    def refuse_overwrite(self, finals: dict[str, str], present: Iterable[str], where: str,
                         noun: str = "collection") -> None:
        """Refuse (UsageError) two names of the dump given one target name, and a rename onto
        a name ``where`` already has (``present``) unless ``replace_existing``.

        ``finals`` maps each selected name of the dump to its target name.
        """
        existing = set(present)
        seen: dict[str, str] = {}
        for source, final in finals.items():
            if final in seen:
                raise UsageError(f"{seen[final]!r} and {source!r} would both be restored as "
                                 f"{final!r}; nothing was done", hint="rename one of them")
            seen[final] = source
            if source != final and final in existing and not self.replace_existing:
                raise UsageError(
                    f"{source!r} would be restored as {final!r}, and {where} already has a "
                    f"{noun} {final!r}; nothing was done",
                    hint="pick a new name, or pass --replace-existing to replace it",
                )

    def describe(self) -> str:
        """One line for reports: what is selected and renamed."""
        parts = []
        if self.include:
            parts.append("only " + ", ".join(self.include))
        if self.schemas:
            parts.append("schemas " + ", ".join(self.schemas))
        if self.exclude:
            parts.append("except " + ", ".join(self.exclude))
        parts += [f"{old} as {new}" for old, new in self.renames]
        parts += [f"{a} as {b}" for a, b in zip(self.ns_from, self.ns_to, strict=True)]
        return "; ".join(parts) or "everything"


WHOLE = Selection()
"""Everything, under its own names."""


def described(selection: Selection | None) -> str | None:
    """What a partial ``selection`` takes, for results and the history; None for everything."""
    return selection.describe() if selection is not None and selection.partial else None


def parse_renames(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``OLD=NEW`` strings (``--rename``) as pairs; UsageError for a malformed one."""
    pairs = []
    for value in values:
        old, eq, new = value.partition("=")
        if not eq or not old or not new:
            raise UsageError(f"--rename takes OLD=NEW; got {value!r}",
                             hint="e.g. --rename users=users_restored")
        pairs.append((old, new))
    return tuple(pairs)


def split_qualified(qualified: str) -> tuple[str | None, str]:
    """``schema.table`` as (schema, table); a name without a dot has no schema."""
    schema, dot, name = qualified.partition(".")
    return (schema, name) if dot else (None, qualified)


def _candidates(name: str, schema: str | None) -> list[str]:
    return [name] if schema is None else [name, f"{schema}.{name}"]


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)


def _variables(pattern: str) -> list[str]:
    return [m.group(1) or "*" for m in _VARIABLE.finditer(pattern)]


def _translate(name: str, source: str, target: str) -> str | None:
    """``name`` matched against ``source`` and rewritten by ``target``, or None."""
    regex, order = [], []
    last = 0
    for match in _VARIABLE.finditer(source):
        regex.append(re.escape(source[last:match.start()]))
        regex.append("(.*?)" if match.end() < len(source) else "(.*)")
        order.append(match.group(1) or "*")
        last = match.end()
    regex.append(re.escape(source[last:]))
    found = re.fullmatch("".join(regex), name)
    if found is None:
        return None
    values = dict(zip([v for v in order if v != "*"],
                      [g for v, g in zip(order, found.groups(), strict=True) if v != "*"],
                      strict=True))
    stars = iter(g for v, g in zip(order, found.groups(), strict=True) if v == "*")

    def fill(match: re.Match[str]) -> str:
        if match.group(1):
            return values[match.group(1)]
        return next(stars, "")

    return _VARIABLE.sub(fill, target)
