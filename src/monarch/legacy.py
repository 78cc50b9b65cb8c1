"""Reading the original monarch 0.0.x ``migrations/settings.py``.

Those projects keep working unchanged; ``monarch init --from-settings`` turns the file into a
``monarch.toml``. The settings file is Python, so reading it runs it, as the original tool did.
"""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from monarch.config import Config, config_from_dict
from monarch.errors import ConfigError

NOTICE = "reading the legacy {path}; `monarch init --from-settings` converts it to monarch.toml"


def read_legacy_settings(path: Path) -> dict[str, Any]:
    """Run ``settings.py`` and return the monarch.toml-shaped dict it describes.

    Secret values stay in the dict (they become ``Secret`` objects once loaded into a Config).
    """
    try:
        namespace = runpy.run_path(str(path))
    except SyntaxError as exc:
        raise ConfigError(
            f"{path}, line {exc.lineno}: syntax error: {exc.msg}",
            hint="fix the settings file, or convert it with `monarch init --from-settings`",
        ) from None
    except Exception as exc:
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
        data["environments"][str(name)] = {"url": _legacy_url(path, str(name), raw)}
    backups = namespace.get("BACKUPS")
    if backups is not None:
        data["backups"] = _legacy_backups(path, backups)
    return data


def load_legacy_settings(path: Path, environ: Mapping[str, str]) -> Config:
    """Load a legacy settings file as a :class:`Config` (rooted at the project folder)."""
    data = read_legacy_settings(path)
    root = path.parent.parent
    data["migrations"] = str(path.parent)
    return config_from_dict(
        data,
        path,
        environ,
        root=root,
        source="legacy",
        notices=(NOTICE.format(path=path),),
    )


def _legacy_url(path: Path, name: str, raw: Mapping[str, Any]) -> str:
    db_name = raw.get("db_name")
    if not db_name:
        raise ConfigError(f"{path}: ENVIRONMENTS[{name!r}] has no 'db_name'")
    host = raw.get("host") or "localhost"
    port = raw.get("port") or 27017
    user, password = raw.get("username"), raw.get("password")
    auth = ""
    if user:
        auth = quote(str(user), safe="")
        if password:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    return f"mongodb://{auth}{host}:{port}/{quote(str(db_name), safe='')}"


def _legacy_backups(path: Path, raw: object) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: BACKUPS must be a dict with 'LOCAL' or 'S3'")
    if "S3" in raw:
        s3 = raw["S3"]
        if not isinstance(s3, Mapping) or not s3.get("bucket_name"):
            raise ConfigError(f"{path}: BACKUPS['S3'] needs 'bucket_name'")
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
        return {"url": f"file://{folder}"}
    raise ConfigError(f"{path}: BACKUPS must have a 'LOCAL' or an 'S3' entry")
