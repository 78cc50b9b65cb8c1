"""Loading ``monarch.toml`` into frozen objects.

The configuration is read once (:func:`load_config`) and passed to every library call. Nothing here
connects to anything; nothing is read at import time.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

from monarch.errors import ConfigError
from monarch.secrets import Secret, redact_url, split_userinfo

CONFIG_NAME = "monarch.toml"
LEGACY_SETTINGS = Path("migrations") / "settings.py"

_TOP_KEYS = ("migrations", "querysets", "backups", "environments")
_ENV_KEYS = ("url", "protected", "backup_before_migrate", "description")
_BACKUP_KEYS = (
    "url",
    "region",
    "endpoint_url",
    "profile",
    "sse",
    "sse_kms_key_id",
    "storage_class",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "compression",
    "part_size",
)
_SECRET_BACKUP_KEYS = frozenset({"aws_secret_access_key", "aws_session_token"})

# URL scheme -> engine name. The registry in monarch.engines maps engine names to code.
SCHEMES = MappingProxyType(
    {
        "mongodb": "mongo",
        "mongodb+srv": "mongo",
        "postgresql": "postgres",
        "postgres": "postgres",
        "sqlite": "sqlite",
    }
)

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", ""})
_PRODUCTION_NAMES = frozenset({"production", "prod"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Environment:
    """One named database: its URL (a secret), engine and safety settings."""

    name: str
    url: Secret
    engine: str
    hosts: tuple[str, ...]
    database: str
    protected: bool
    protected_reason: str
    backup_before_migrate: bool = False
    description: str = ""

    @property
    def display_url(self) -> str:
        """The URL with any password replaced: safe to print."""
        return redact_url(self.url.reveal())

    @property
    def host(self) -> str:
        """The host(s) as one string, e.g. ``db1:27017,db2:27017`` (empty for a file)."""
        return ",".join(self.hosts)


@dataclass(frozen=True)
class StoreConfig:
    """Where backups go: a store URL (``file://...``, ``s3://...``) and its options."""

    url: str
    options: Mapping[str, str | Secret] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """A loaded project configuration. ``root`` is the folder relative paths start from."""

    root: Path
    path: Path | None
    migrations_dir: Path
    querysets_dir: Path
    backups: StoreConfig
    environments: Mapping[str, Environment]
    source: str = "toml"
    notices: tuple[str, ...] = ()

    def environment(self, name: str) -> Environment:
        """Return the environment called ``name``, or raise a ConfigError listing the known ones."""
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "(none)"
            close = difflib.get_close_matches(name, list(self.environments), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "add it under [environments] in "
            if not close:
                hint += str(self.path or CONFIG_NAME)
            raise ConfigError(
                f"unknown environment {name!r}; known environments: {known}", hint=hint
            ) from None


def find_config(start: Path | None = None, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the configuration file.

    Order: ``explicit`` (the ``--config`` option), then ``$MONARCH_CONFIG``, then ``monarch.toml``
    or a legacy ``migrations/settings.py`` in ``start`` or any folder above it.
    """
    chosen = explicit if explicit is not None else os.environ.get("MONARCH_CONFIG") or None
    if chosen is not None:
        path = Path(chosen).expanduser()
        if not path.is_file():
            origin = "--config" if explicit is not None else "MONARCH_CONFIG"
            raise ConfigError(
                f"config file {path} (from {origin}) does not exist",
                hint="check the path, or run `monarch init` to create one",
            )
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for candidate in (folder / CONFIG_NAME, folder / LEGACY_SETTINGS):
            if candidate.is_file():
                return candidate
    raise ConfigError(
        f"no {CONFIG_NAME} found in {here} or any folder above it",
        hint="run `monarch init` in your project's root, or pass --config PATH",
    )


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    start: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Find and load the configuration (see :func:`find_config`), expanding ``${VAR}`` values."""
    found = find_config(start, path)
    env = os.environ if environ is None else environ
    if found.name == "settings.py":
        from monarch.legacy import load_legacy_settings

        return load_legacy_settings(found, env)
    try:
        text = found.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {found}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{found}: invalid TOML: {exc}", hint="fix the syntax at that line"
        ) from None
    return config_from_dict(data, found, env)


def config_from_dict(
    data: Mapping[str, Any],
    path: Path | None,
    environ: Mapping[str, str],
    *,
    root: Path | None = None,
    source: str = "toml",
    notices: tuple[str, ...] = (),
) -> Config:
    """Validate a parsed configuration and build the frozen :class:`Config`."""
    where = str(path) if path else "configuration"
    base = root or (path.parent if path else Path.cwd())
    _check_keys(data, _TOP_KEYS, where, "")
    migrations = _path_value(data.get("migrations", "migrations"), base, where, "migrations")
    querysets = _path_value(data.get("querysets", "querysets"), base, where, "querysets")
    backups = _store_config(data.get("backups", "file://backups"), base, where, environ)
    envs_raw = data.get("environments", {})
    if not isinstance(envs_raw, Mapping):
        raise ConfigError(f"{where}: [environments] must be a table of named environments")
    environments = {
        name: _environment(name, raw, base, where, environ) for name, raw in envs_raw.items()
    }
    return Config(
        root=base,
        path=path,
        migrations_dir=migrations,
        querysets_dir=querysets,
        backups=backups,
        environments=MappingProxyType(environments),
        source=source,
        notices=notices,
    )


def expand_vars(value: str, environ: Mapping[str, str], where: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from ``environ``; an unset VAR is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where} uses ${{{name}}}, but the environment variable {name} is not set",
            hint=f"export {name}=... in the shell (or CI secret) that runs monarch",
        )

    return _VAR.sub(substitute, value)


def parse_database_url(url: str, base: Path, where: str) -> tuple[str, tuple[str, ...], str]:
    """Return (engine, hosts, database) for a database URL; the engine is chosen by scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"{where}: {redact_url(url)!r} is not a URL",
            hint="write it like mongodb://host:27017/dbname",
        )
    engine = SCHEMES.get(scheme.lower())
    if engine is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError(
            f"{where}: unknown URL scheme {scheme + '://'!r}; monarch knows {known}",
            hint=_closest_hint(scheme.lower(), list(SCHEMES)),
        )
    if engine == "sqlite":
        # sqlite:///rel/app.db is relative to the config file; sqlite:////abs/app.db is absolute.
        file = rest[1:] if rest.startswith("/") else rest
        if not file:
            raise ConfigError(f"{where}: sqlite URL has no file path", hint="sqlite:///data/app.db")
        db_path = Path(file) if file.startswith("/") else base / file
        return engine, (), str(db_path)
    netloc, _, tail = rest.partition("/")
    _, _, hostpart = split_userinfo(netloc)
    hosts = tuple(h for h in hostpart.split(",") if h)
    database = unquote(tail.partition("?")[0])
    if not database:
        raise ConfigError(
            f"{where}: the URL {redact_url(url)!r} names no database",
            hint=f"put the database name after the host, e.g. {scheme}://host/myapp",
        )
    return engine, hosts, database


def _environment(
    name: str, raw: object, base: Path, where: str, environ: Mapping[str, str]
) -> Environment:
    section = f"environments.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [{section}] must be a table with at least `url`")
    _check_keys(raw, _ENV_KEYS, where, section + ".")
    if "url" not in raw:
        raise ConfigError(
            f"{where}: [{section}] has no `url`",
            hint=f'add url = "mongodb://localhost:27017/{name}" under [{section}]',
        )
    url = expand_vars(_string(raw["url"], where, f"{section}.url"), environ, f"{section}.url")
    engine, hosts, database = parse_database_url(url, base, f"{where} [{section}] url")
    explicit = raw.get("protected")
    if explicit is not None and not isinstance(explicit, bool):
        raise ConfigError(f"{where}: {section}.protected must be true or false")
    protected, reason = _judge_protection(name, hosts, explicit)
    backup_first = raw.get("backup_before_migrate", False)
    if not isinstance(backup_first, bool):
        raise ConfigError(f"{where}: {section}.backup_before_migrate must be true or false")
    return Environment(
        name=name,
        url=Secret(url),
        engine=engine,
        hosts=hosts,
        database=database,
        protected=protected,
        protected_reason=reason,
        backup_before_migrate=backup_first,
        description=str(raw.get("description", "")),
    )


def _judge_protection(name: str, hosts: tuple[str, ...], explicit: bool | None) -> tuple[bool, str]:
    """Protected if configured so; else, as the original tool judged, by name or remote host."""
    if explicit is not None:
        return explicit, "set in config"
    if name.lower() in _PRODUCTION_NAMES:
        return True, f"named {name!r}"
    for host in hosts:
        bare = host.partition("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
        if bare.lower() not in _LOCAL_HOSTS and not bare.startswith("127."):
            return True, f"host {host} is not local"
    return False, "local"


def _store_config(raw: object, base: Path, where: str, environ: Mapping[str, str]) -> StoreConfig:
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, Mapping) or "url" not in raw:
        raise ConfigError(
            f"{where}: `backups` must be a URL string or a [backups] table with `url`",
            hint='backups = "file://backups" or backups = "s3://bucket/prefix"',
        )
    _check_keys(raw, _BACKUP_KEYS, where, "backups.")
    url = expand_vars(_string(raw["url"], where, "backups.url"), environ, "backups.url")
    scheme, sep, rest = url.partition("://")
    if not sep:
        # A bare path is a local folder.
        scheme, rest = "file", url
    if scheme == "file":
        folder = Path(rest).expanduser()
        url = "file://" + str(folder if folder.is_absolute() else (base / folder))
    options: dict[str, str | Secret] = {}
    for key, value in raw.items():
        if key == "url":
            continue
        text = expand_vars(_string(value, where, f"backups.{key}"), environ, f"backups.{key}")
        options[key] = Secret(text) if key in _SECRET_BACKUP_KEYS else text
    return StoreConfig(url=url, options=MappingProxyType(options))


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {prefix + key!r}",
                hint=_closest_hint(key, list(allowed), prefix)
                or f"valid keys here: {', '.join(allowed)}",
            )


def _closest_hint(word: str, choices: list[str], prefix: str = "") -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"did you mean {prefix + close[0]!r}?" if close else None


def _string(value: object, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {type(value).__name__}")
    return value


def _path_value(value: object, base: Path, where: str, key: str) -> Path:
    path = Path(_string(value, where, key)).expanduser()
    return path if path.is_absolute() else base / path
