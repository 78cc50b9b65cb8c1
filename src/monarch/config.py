"""Loading ``monarch.toml`` into frozen objects.

The configuration is read once (:func:`load_config`) and passed to every library call. Nothing here
connects to anything; nothing is read at import time.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

from monarch.engines import registry
from monarch.errors import ConfigError, UsageError
from monarch.legacy import NOTICE as LEGACY_NOTICE
from monarch.legacy import read_legacy_settings
from monarch.secrets import Secret, redact_text, redact_url, split_userinfo, url_secrets
from monarch.text import percent_encode, user_path

CONFIG_NAME = "monarch.toml"
LEGACY_SETTINGS = Path("migrations") / "settings.py"

_TOP_KEYS = ("migrations", "querysets", "checks", "backups", "environments")
_ENV_KEYS = (
    "url",
    "username",
    "password",
    "protected",
    "backup_before_migrate",
    "description",
    "drill_into",
    "rehearse_into",
)
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
    "max_restore_size",
    "retain_days",
    "lock_mode",
    "notify_url",
    "notify_on",
    "encrypt_to",
    "passphrase_env",
    "identity",
    "manifest_key_env",
)
# A webhook's URL often is its credential (the token is in the path): held as a Secret.
_SECRET_BACKUP_KEYS = frozenset({"aws_secret_access_key", "aws_session_token", "notify_url"})
# Options written as TOML numbers (kept as their text) and as lists of strings.
_NUMBER_BACKUP_KEYS = frozenset({"retain_days"})
_LIST_BACKUP_KEYS = frozenset({"notify_on"})

BackupOption = str | Secret | tuple[str, ...]
"""A ``[backups]`` option's value: text, a secret, or a list of words (``notify_on``)."""

# URL scheme -> engine name, as monarch.engines.registry lists them.
SCHEMES = MappingProxyType(
    {scheme: row.name for row in registry.engines() for scheme in row.schemes}
)

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", ""})
_PRODUCTION_NAMES = frozenset({"production", "prod"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A variable whose name says it holds a credential: its value is redacted wherever it goes.
_SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CRED", re.IGNORECASE)
_URL_HEAD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
ENGINE_LABELS = MappingProxyType({row.name: row.display for row in registry.engines()})


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
    drill_into: str = ""
    """The environment whose server restore drills of this one's backups use (``drill_into``);
    empty: name one with ``--into``."""
    rehearse_into: str = ""
    """The environment whose server ``monarch rehearse`` makes its scratch database on."""
    # Variables the URL needs that are not set: the environment is listed but cannot be used.
    missing: tuple[str, ...] = ()
    missing_key: str = "url"  # the key that uses missing[0]
    # Values of ${VAR}s that went into the URL as credentials (see config_from_dict).
    substituted: tuple[Secret, ...] = ()

    @property
    def display_url(self) -> str:
        """The URL with any password replaced: safe to print."""
        return redact_url(self.url.reveal())

    def secret_values(self) -> list[str]:
        """Every secret of this environment (for redaction): the URL's password and secret
        parameters, as written and decoded, and the credential values substituted into it."""
        values = url_secrets(self.url.reveal()) + [s.reveal() for s in self.substituted]
        return list(dict.fromkeys(v for v in values if v))

    def scrub(self, text: str) -> str:
        """``text`` with this environment's URL shown redacted and every secret removed."""
        url = self.url.reveal()
        if url:
            text = text.replace(url, self.display_url)
        return redact_text(text, self.secret_values())

    def require(self) -> Environment:
        """Return this environment, or raise the ConfigError naming an unset variable."""
        if self.missing:
            raise _unset(self.missing[0], f"environments.{self.name}.{self.missing_key}")
        return self

    def with_database(self, database: str) -> Environment:
        """This environment aimed at ``database``, another database of the same server.

        The URL, its credentials, and the protection rules stay this environment's (the name
        too: a protected environment's confirmation is still its name). Refused (UsageError)
        for an engine whose URL names a file, and for a name its server cannot have.
        """
        row = registry.by_name(self.engine)
        if row is None or row.file_url:
            raise UsageError(
                f"environment {self.name!r} is a file, not a server with other databases; "
                "--database does not apply",
                hint="restore into another environment instead",
            )
        _check_database_name(row, database, f"--database {database}")
        return replace(self, database=database)

    def in_folder(self, folder: str | os.PathLike[str], name: str) -> Environment:
        """This environment aimed at file ``name`` in ``folder``, for an engine whose URL
        names a file (SQLite); the counterpart of :meth:`with_database` for servers. Refused
        (UsageError) for a server's engine and for a name that is not a plain file name."""
        row = registry.by_name(self.engine)
        if row is None or not row.file_url:
            raise UsageError(f"environment {self.name!r} is a server's database, not a file",
                             hint="aim it at another database of its server instead")
        if not name or name in (".", "..") or "/" in name or "\x00" in name:
            raise UsageError(f"{name!r} is not a file name")
        path = Path(folder).absolute() / name
        return replace(self, database=str(path), url=Secret(f"{row.schemes[0]}:///{path}"))

    @property
    def remote_host(self) -> str | None:
        """The first host that is not this machine (None: every host is local, or a file)."""
        return next((host for host in self.hosts if not _local(host)), None)

    @property
    def host(self) -> str:
        """The host(s) as one string, e.g. ``db1:27017,db2:27017`` (empty for a file)."""
        return ",".join(self.hosts)


@dataclass(frozen=True)
class StoreConfig:
    """Where backups go: a store URL (``file://...``, ``s3://...``) and its options."""

    url: str
    options: Mapping[str, BackupOption] = field(default_factory=dict)
    missing: tuple[tuple[str, str], ...] = ()  # (key, variable) pairs left unset
    encrypt_to: tuple[str, ...] = ()
    """age recipients (``age1...``) every backup is encrypted to (``[backups] encrypt_to``)."""
    identity: Path | None = None
    """The age identity file restores decrypt with (``[backups] identity``), if set."""

    def require(self) -> StoreConfig:
        """Return this store configuration, or raise the ConfigError naming an unset variable."""
        if self.missing:
            key, name = self.missing[0]
            raise _unset(name, f"backups.{key}")
        return self

    def secret_values(self) -> list[str]:
        """The secret option values and the URL's secrets, for redaction."""
        values = [v.reveal() for v in self.options.values() if isinstance(v, Secret)]
        return [v for v in values + url_secrets(self.url) if v]


@dataclass(frozen=True)
class Config:
    """A loaded project configuration. ``root`` is the folder relative paths start from."""

    root: Path
    path: Path | None
    migrations_dir: Path
    querysets_dir: Path
    checks_dir: Path
    """The folder of restore drills' checks (``checks = "..."``; default ``checks``)."""
    backups: StoreConfig
    environments: Mapping[str, Environment]
    source: str = "toml"
    notices: tuple[str, ...] = ()

    def environment(self, name: str) -> Environment:
        """Return the environment called ``name``, or raise a ConfigError listing the known ones."""
        try:
            return self.environments[name].require()
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
        origin = "--config" if explicit is not None else "MONARCH_CONFIG"
        path = user_path(chosen)
        if not path.is_absolute():
            path = Path.cwd() / path  # relative to the folder monarch runs in
        if path.is_dir():
            inside = [path / n for n in (CONFIG_NAME, LEGACY_SETTINGS) if (path / n).is_file()]
            raise ConfigError(
                f"{path} (from {origin}) is a folder, not a config file",
                hint=f"point {origin} at the file inside it: {inside[0]}"
                if inside
                else f"point {origin} at a {CONFIG_NAME} file (or run `monarch init` there)",
            )
        if not path.is_file():
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
        root = found.parent.parent  # the project's folder, where the original tool ran
        return config_from_dict(
            read_legacy_settings(found, root=root),
            found,
            env,
            root=root,
            source="legacy",
            notices=(LEGACY_NOTICE.format(path=found),),
        )
    try:
        text = found.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{found}: not UTF-8 text (byte {exc.start} is not valid)",
            hint="save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {found}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
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
    checks = _path_value(data.get("checks", "checks"), base, where, "checks")
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
        checks_dir=checks,
        backups=backups,
        environments=MappingProxyType(environments),
        source=source,
        notices=notices,
    )


def expand_vars(value: str, environ: Mapping[str, str], where: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from ``environ``; an unset VAR is an error."""
    expanded = _expand(value, environ)
    if expanded.missing:
        raise _unset(expanded.missing[0], where)
    return expanded.text


@dataclass(frozen=True)
class _Expanded:
    text: str
    missing: tuple[str, ...]  # unset variables (replaced by nothing in ``text``)
    secrets: tuple[str, ...]  # substituted values that are credentials


def _expand(value: str, environ: Mapping[str, str], *, url: bool = False) -> _Expanded:
    """Expand the variables of ``value``; with ``url``, each value that lands in the URL's
    user or password part is percent-encoded, so a password holding ``@ : / #`` stays one."""
    userinfo = (0, -1)
    password_from = 0
    if url:
        # Same-length masks keep the positions of the template while hiding what a default holds.
        masked = _VAR.sub(lambda m: "\x00" * len(m.group()), value)
        head = _URL_HEAD.match(masked)
        if head:
            start = head.end()
            end = min([i for i in map(masked.find, "/?#", [start] * 3) if i != -1] or [len(masked)])
            at = masked.rfind("@", start, end)
            if at != -1:
                userinfo = (start, at)
                colon = masked.find(":", start, at)
                password_from = colon if colon != -1 else at
    missing: list[str] = []
    secrets: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            found = environ[name]
        elif default is not None:
            found = default
        else:
            missing.append(name)
            return ""
        inside = userinfo[0] <= match.start() and match.end() <= userinfo[1]
        in_password = inside and match.start() > password_from
        if in_password or "://" in found or _SECRET_NAME.search(name):
            secrets.append(found)
        return percent_encode(found) if inside else found

    text = _VAR.sub(substitute, value)
    return _Expanded(text, tuple(dict.fromkeys(missing)), tuple(s for s in secrets if s))


def _unset(name: str, where: str) -> ConfigError:
    return ConfigError(
        f"{where} uses ${{{name}}}, but the environment variable {name} is not set",
        hint=f"export {name}=... in the shell (or CI secret) that runs monarch",
    )


def parse_database_url(url: str, base: Path, where: str) -> tuple[str, tuple[str, ...], str]:
    """Return (engine, hosts, database) for a database URL; the engine is chosen by scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"{where}: {redact_url(url)!r} is not a URL",
            hint="write it like mongodb://host:27017/dbname",
        )
    row = registry.by_scheme(scheme)
    if row is None:
        known = "; ".join(
            f"{r.display} ({', '.join(s + '://' for s in r.schemes)})" for r in registry.engines()
        )
        # Suggest only a likely typo (mongo:// for mongodb://), never another engine.
        close = difflib.get_close_matches(scheme.lower(), list(SCHEMES), n=1, cutoff=0.75)
        raise ConfigError(
            f"{where}: unknown URL scheme {scheme + '://'!r}; monarch supports {known}",
            hint=f"did you mean {close[0] + '://'!r}?"
            if close
            else f"monarch works with {_listed(r.display for r in registry.engines())} only",
        )
    engine = row.name
    if row.file_url:
        # sqlite:///rel/app.db is relative to the config file; sqlite:////abs/app.db is absolute.
        file = rest[1:] if rest.startswith("/") else rest
        if not file:
            scheme = row.schemes[0]
            raise ConfigError(
                f"{where}: {scheme} URL has no file path", hint=f"{scheme}:///data/app.db"
            )
        db_path = Path(file) if file.startswith("/") else base / file
        return engine, (), str(db_path)
    netloc, _, tail = rest.partition("/")
    if "@" in tail.partition("?")[0]:
        # Most likely a password holding an unencoded "/": the URL cannot be split safely, and
        # showing any part of it could show part of the password.
        raise ConfigError(
            f"{where}: the URL has an '@' after its host, so monarch cannot tell its user, "
            "password, host and database apart (the URL is not shown: it may hold a password)",
            hint="percent-encode '/' as %2F, '@' as %40 and '#' as %23 in the user and password, "
            "or put the password in a ${VAR} or the `password` key (monarch encodes those)",
        )
    _, _, hostpart = split_userinfo(netloc)
    hosts = tuple(h for h in hostpart.split(",") if h)
    for host in hosts:
        _check_port(host, where)
    database = unquote(tail.partition("?")[0])
    if not database:
        raise ConfigError(
            f"{where}: the URL {redact_url(url)!r} names no database",
            hint=f"put the database name after the host, e.g. {scheme}://host/myapp",
        )
    _check_database_name(row, database, where)
    return engine, hosts, database


def _listed(names: Iterable[str]) -> str:
    """``a, b and c``."""
    items = list(names)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _check_port(host: str, where: str) -> None:
    """A port, where a host has one, is a number from 1 to 65535."""
    if host.startswith("["):  # [::1]:27017
        port = host.partition("]")[2]
        if not port:
            return
        if not port.startswith(":"):
            raise ConfigError(f"{where}: {host!r} is not a host (or [IPv6 address]) and port")
        port = port[1:]
    elif ":" in host:
        port = host.rpartition(":")[2]
    else:
        return
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ConfigError(
            f"{where}: the port {unquote(port)!r} of host {host.rpartition(':')[0]!r} "
            "is not a number from 1 to 65535",
            hint="write the host as host:port with a numeric port, e.g. localhost:27017",
        )


def _check_database_name(row: registry.EngineRow, database: str, where: str) -> None:
    """Some servers refuse characters in database names (``row.name_forbidden``: MongoDB), and
    names of ``row.name_max_bytes`` bytes or more."""
    bad = sorted({c for c in database if c in row.name_forbidden})
    if bad:
        shown = ", ".join("a space" if c == " " else repr(c) for c in bad)
        better = "".join("_" if c in row.name_forbidden else c for c in database)
        raise ConfigError(
            f"{where}: {database!r} cannot be a {row.display} database name "
            f"(it may not contain {shown})",
            hint=f"rename the database in the URL, e.g. {better!r}",
        )
    size = len(database.encode("utf-8", "surrogatepass"))
    if row.name_max_bytes is not None and size >= row.name_max_bytes:
        raise ConfigError(
            f"{where}: the {row.display} database name {database[:20]!r}... is "
            f"{size} bytes long; {row.display} allows at most {row.name_max_bytes - 1}",
            hint="use a shorter database name in the URL",
        )


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
    template = _string(raw["url"], where, f"{section}.url")
    expanded = _expand(template, environ, url=True)
    # username/password beside url: plain values (or ${VAR}s), encoded into the URL by monarch.
    parts = {
        key: _expand(_string(raw[key], where, f"{section}.{key}"), environ)
        for key in ("username", "password")
        if key in raw
    }
    missing_key = next((k for k, v in [("url", expanded), *parts.items()] if v.missing), "url")
    missing = tuple(dict.fromkeys(n for v in [expanded, *parts.values()] for n in v.missing))
    secrets = [*expanded.secrets, *(v for part in parts.values() for v in part.secrets)]
    if "password" in parts:
        secrets.append(parts["password"].text)
    explicit = raw.get("protected")
    if explicit is not None and not isinstance(explicit, bool):
        raise ConfigError(f"{where}: {section}.protected must be true or false")
    backup_first = raw.get("backup_before_migrate", False)
    if not isinstance(backup_first, bool):
        raise ConfigError(f"{where}: {section}.backup_before_migrate must be true or false")
    if missing:
        # Resolved only when a command uses it: an unset production password must not stop
        # a command on development. Show what can be known without the variable.
        try:
            engine, hosts, database = parse_database_url(expanded.text, base, where)
        except ConfigError:
            scheme = template.partition("://")[0].lower() if "://" in template else ""
            engine, hosts, database = SCHEMES.get(scheme, ""), (), ""
        url = ""
    else:
        url = expanded.text
        if parts:
            url = _with_userinfo(
                url,
                parts["username"].text if "username" in parts else None,
                parts["password"].text if "password" in parts else None,
                f"{where} [{section}]",
            )
        engine, hosts, database = parse_database_url(url, base, f"{where} [{section}] url")
    protected, reason = _judge_protection(name, hosts, explicit)
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
        drill_into=_string(raw.get("drill_into", ""), where, f"{section}.drill_into"),
        rehearse_into=_string(raw.get("rehearse_into", ""), where, f"{section}.rehearse_into"),
        missing=missing,
        missing_key=missing_key,
        substituted=tuple(Secret(v) for v in dict.fromkeys(secrets) if v),
    )


def _with_userinfo(url: str, user: str | None, password: str | None, where: str) -> str:
    """``url`` with ``user`` and ``password`` (the ``username``/``password`` keys) percent-encoded
    into its user part; a URL that already has a user is refused (two places for one thing)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    present, _, hosts = split_userinfo(netloc)
    row = registry.by_scheme(scheme) if sep else None
    if row is None or row.file_url:
        servers = " or ".join(r.display for r in registry.engines() if not r.file_url)
        files = " or ".join(r.display for r in registry.engines() if r.file_url)
        raise ConfigError(
            f"{where}: `username` and `password` need a {servers} url",
            hint=f"remove them (a {files} file has no login)",
        )
    if present is not None:
        raise ConfigError(
            f"{where}: the url has a user already, and `username`/`password` are set too",
            hint="give the user and password in one place: in the url, or in the two keys",
        )
    if not user:
        raise ConfigError(
            f"{where}: `password` is set but `username` is not",
            hint='add username = "..." beside the password',
        )
    auth = percent_encode(user) + (":" + percent_encode(password) if password else "")
    return f"{scheme}{sep}{auth}@{hosts}{slash}{tail}"


def _judge_protection(name: str, hosts: tuple[str, ...], explicit: bool | None) -> tuple[bool, str]:
    """Protected if configured so; else, as the original tool judged, by name or remote host."""
    if explicit is not None:
        return explicit, "set in config"
    if name.lower() in _PRODUCTION_NAMES:
        return True, f"named {name!r}"
    for host in hosts:
        if not _local(host):
            return True, f"host {host} is not local"
    return False, "local"


def _local(host: str) -> bool:
    """Whether ``host`` (with or without its port) is this machine."""
    bare = host.partition("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    return bare.lower() in _LOCAL_HOSTS or bare.startswith("127.")


def _store_config(raw: object, base: Path, where: str, environ: Mapping[str, str]) -> StoreConfig:
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, Mapping) or "url" not in raw:
        raise ConfigError(
            f"{where}: `backups` must be a URL string or a [backups] table with `url`",
            hint='backups = "file://backups" or backups = "s3://bucket/prefix"',
        )
    _check_keys(raw, _BACKUP_KEYS, where, "backups.")
    missing: list[tuple[str, str]] = []
    expanded = _expand(_string(raw["url"], where, "backups.url"), environ)
    missing += [("url", name) for name in expanded.missing]
    url = expanded.text
    scheme, sep, rest = url.partition("://")
    if not sep:
        # A bare path is a local folder.
        scheme, rest = "file", url
    if scheme == "file" and not expanded.missing:
        folder = user_path(rest)
        url = "file://" + str(folder if folder.is_absolute() else (base / folder))
    options: dict[str, BackupOption] = {}
    encrypt_to = _recipients(raw.get("encrypt_to", []), where)
    identity = (_path_value(raw["identity"], base, where, "backups.identity")
                if "identity" in raw else None)
    for key, value in raw.items():
        if key in ("url", "encrypt_to", "identity"):
            continue
        if key in _LIST_BACKUP_KEYS:
            options[key] = _words(value, where, f"backups.{key}")
            continue
        number = key in _NUMBER_BACKUP_KEYS and type(value) is int  # not a bool
        text_value = str(value) if number else value
        expanded = _expand(_string(text_value, where, f"backups.{key}"), environ)
        # An unset credential stops only the commands that open the store.
        missing += [(key, name) for name in expanded.missing]
        text = expanded.text
        options[key] = Secret(text) if key in _SECRET_BACKUP_KEYS else text
    return StoreConfig(url=url, options=MappingProxyType(options), missing=tuple(missing),
                       encrypt_to=encrypt_to, identity=identity)


def _recipients(value: object, where: str) -> tuple[str, ...]:
    """``encrypt_to``: one age recipient or a list of them (checked when a backup starts)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"{where}: backups.encrypt_to must be a list of age recipients",
                          hint='encrypt_to = ["age1..."] (from `age-keygen -y key.txt`)')
    return tuple(v.strip() for v in items)


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


def _words(value: object, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: {key} must be a list of strings, e.g. ["failure"]')
    return tuple(value)


def _path_value(value: object, base: Path, where: str, key: str) -> Path:
    path = user_path(_string(value, where, key))
    return path if path.is_absolute() else base / path
