"""Reading the original monarch 0.0.x ``migrations/settings.py``.

Those projects keep working unchanged; ``monarch init --from-settings`` turns the file into a
``monarch.toml``. The settings file is Python, so reading it runs it, as the original tool did.

It is part of the configuration's layer, below :mod:`monarch.config`: it only turns the file into
the dict a monarch.toml would hold, and :func:`monarch.config.load_config` builds the Config.
"""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monarch.errors import ConfigError
from monarch.text import percent_encode, user_path

_ENV_KEYS = ("host", "port", "db_name", "username", "password", "sslCAFile")
NOTICE = "reading the legacy {path}; `monarch init --from-settings` converts it to monarch.toml"


def read_legacy_settings(path: Path, *, root: Path | None = None) -> dict[str, Any]:
    """Run ``settings.py`` and return the monarch.toml-shaped dict it describes.

    Secret values stay in the dict (they become ``Secret`` objects once loaded into a Config).
    With ``root``, a relative ``sslCAFile`` is made absolute against it (the original tool ran
    from the project's root); without, it is kept as written.
    """
    try:
        namespace = runpy.run_path(str(path))
    except SyntaxError as exc:
        raise ConfigError(
            f"{path}, line {exc.lineno}: syntax error: {exc.msg}",
            hint="fix the settings file, or convert it with `monarch init --from-settings`",
        ) from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{path} failed to load: {type(exc).__name__}") from None
    environments = namespace.get("ENVIRONMENTS")
    if not isinstance(environments, Mapping):
        raise ConfigError(
            f"{path} defines no ENVIRONMENTS dict",
            hint="define ENVIRONMENTS = {'development': {'host': ..., 'db_name': ...}}",
        )
    data: dict[str, Any] = {"migrations": str(path.parent), "environments": {}}
    for name, raw in environments.items():
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: ENVIRONMENTS[{name!r}] must be a dict")
        data["environments"][str(name)] = {"url": _legacy_url(path, str(name), raw, root)}
    backups = namespace.get("BACKUPS")
    if backups is not None:
        data["backups"] = _legacy_backups(path, backups)
    return data


def _legacy_url(path: Path, name: str, raw: Mapping[str, Any], root: Path | None) -> str:
    """The URL the original built: ``mongodb://[user[:password]@]HOST/DB_NAME``, with the
    user and password percent-encoded (the original did not, so ``@`` or ``:`` in them broke
    it) and ``sslCAFile`` as ``tls=true&tlsCAFile=...``. Keys it cannot carry are refused."""
    where = f"{path}: ENVIRONMENTS[{name!r}]"
    _refuse_unknown_keys(where, raw, _ENV_KEYS)
    db_name = raw.get("db_name")
    if not db_name:
        raise ConfigError(f"{where} has no 'db_name'")
    hosts = _legacy_hosts(where, raw.get("host"), raw.get("port"))
    user, password = raw.get("username"), raw.get("password")
    auth = ""
    if user:
        auth = percent_encode(str(user))
        if password:
            auth += ":" + percent_encode(str(password))
        auth += "@"
    elif password:
        raise ConfigError(
            f"{where} has a 'password' but no 'username'",
            hint="add the 'username' the password belongs to, or remove the password",
        )
    query = ""
    ca_file = raw.get("sslCAFile")
    if ca_file:
        ca = user_path(str(ca_file))
        if root is not None and not ca.is_absolute():
            ca = root / ca  # the original ran from the project's root
        query = f"?tls=true&tlsCAFile={percent_encode(str(ca), safe='/')}"
    return f"mongodb://{auth}{','.join(hosts)}/{percent_encode(str(db_name))}{query}"


def _legacy_hosts(where: str, host: object, port: object) -> list[str]:
    """``host`` as written (``h``, ``h:27017`` or ``h1:27017,h2:27017``); ``port``, which the
    original refused and older releases accepted, only where no host has a port already."""
    if host in (None, ""):
        host = "localhost" if port not in (None, "") else "localhost:27017"
    text = str(host).strip()
    hosts = [h.strip() for h in text.split(",") if h.strip()]
    if not hosts or any(c in text for c in "/@?# ") or "://" in text:
        raise ConfigError(
            f"{where}: 'host' must be host:port or a comma-separated list of them, not {text!r}",
            hint="write it as the original did, e.g. 'host': 'db.example.com:27017'",
        )
    if port in (None, ""):
        return hosts
    with_port = [h for h in hosts if (h.partition("]")[2] if h.startswith("[") else h).count(":")]
    if with_port:
        raise ConfigError(
            f"{where} sets both 'port' ({port!r}) and a port in 'host' ({with_port[0]!r})",
            hint="remove 'port': the port belongs in 'host' (host:port), as the original tool "
            "required",
        )
    return [f"{h}:{port}" for h in hosts]


def _refuse_unknown_keys(where: str, raw: Mapping[Any, Any], allowed: tuple[str, ...]) -> None:
    """A key monarch would not use is refused: silently dropping it could change what runs."""
    unknown = [str(key) for key in raw if key not in allowed]
    if unknown:
        raise ConfigError(
            f"{where} has the key {unknown[0]!r}, which monarch cannot carry over "
            f"(it reads {', '.join(allowed)})",
            hint="remove it from settings.py, or convert with `monarch init --from-settings` "
            "without it and write the setting into monarch.toml (see docs/upgrading.md)",
        )


def _legacy_backups(path: Path, raw: object) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: BACKUPS must be a dict with 'LOCAL' or 'S3'")
    _refuse_unknown_keys(f"{path}: BACKUPS", raw, ("LOCAL", "S3"))
    if "S3" in raw and "LOCAL" in raw:
        raise ConfigError(
            f"{path}: BACKUPS has both 'LOCAL' and 'S3'; the original used exactly one",
            hint="keep the one your backups are in",
        )
    if "S3" in raw:
        s3 = raw["S3"]
        if not isinstance(s3, Mapping) or not s3.get("bucket_name"):
            raise ConfigError(f"{path}: BACKUPS['S3'] needs 'bucket_name'")
        _refuse_unknown_keys(
            f"{path}: BACKUPS['S3']",
            s3,
            ("bucket_name", "aws_access_key_id", "aws_secret_access_key"),
        )
        result = {"url": f"s3://{s3['bucket_name']}"}
        for key in ("aws_access_key_id", "aws_secret_access_key"):
            if s3.get(key):
                result[key] = str(s3[key])
        return result
    if "LOCAL" in raw:
        local = raw["LOCAL"]
        folder = local.get("backup_dir") if isinstance(local, Mapping) else None
        if not folder:
            raise ConfigError(f"{path}: BACKUPS['LOCAL'] needs 'backup_dir'")
        _refuse_unknown_keys(f"{path}: BACKUPS['LOCAL']", local, ("backup_dir",))
        return {"url": f"file://{folder}"}
    raise ConfigError(f"{path}: BACKUPS must have a 'LOCAL' or an 'S3' entry")
