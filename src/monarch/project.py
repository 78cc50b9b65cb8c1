"""Project-level commands: ``init`` and ``list_environments``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monarch.config import CONFIG_NAME, LEGACY_SETTINGS, Config, Environment
from monarch.errors import ConfigError
from monarch.legacy import read_legacy_settings
from monarch.secrets import split_userinfo

_TEMPLATE = """\
# monarch's configuration: where migrations and backups live, and the named environments.
# Values may use ${{VAR}} (or ${{VAR:-default}}), read from the process environment: keep
# passwords there, not here.

migrations = "migrations"      # folder of migration files (monarch generate NAME)
querysets = "querysets"        # folder of query sets (what a backup or copy_db takes)
backups = "file://backups"     # a local folder, or s3://bucket/prefix

[environments.development]
url = "mongodb://localhost:27017/{database}"

# [environments.production]
# url = "${{PROD_MONGODB_URL}}"
# protected = true             # migrate, restore and copy_db into it ask for its name first
"""


@dataclass(frozen=True)
class InitResult:
    """What ``init`` wrote, and what the user should do next."""

    config_path: Path
    created: tuple[Path, ...]
    variables: tuple[str, ...] = ()  # environment variables the new config expects
    next_steps: tuple[str, ...] = field(default=())


def init_project(root: Path, *, force: bool = False, from_settings: bool = False) -> InitResult:
    """Write ``monarch.toml`` and the ``migrations/`` and ``querysets/`` folders under ``root``.

    An existing ``monarch.toml`` is never overwritten unless ``force``. With ``from_settings`` the
    legacy ``migrations/settings.py`` is converted; its passwords are not copied but replaced by
    ``${VAR}`` references (listed in ``InitResult.variables``). Without it, a folder holding a
    legacy settings file is refused (unless ``force``): a fresh monarch.toml would ignore it.
    """
    root = root.resolve()
    config_path = root / CONFIG_NAME
    legacy = root / LEGACY_SETTINGS
    if not from_settings and not force and legacy.is_file():
        raise ConfigError(
            f"{root} is a project of the original monarch 0.0.x ({LEGACY_SETTINGS} is here); "
            "nothing was written",
            hint="run `monarch init --from-settings` to convert its settings to monarch.toml "
            "(or pass --force to write a new, unrelated monarch.toml anyway)",
        )
    if config_path.exists() and not force:
        raise ConfigError(
            f"{config_path} already exists; nothing was changed",
            hint="pass --force to overwrite it",
        )
    variables: tuple[str, ...] = ()
    if from_settings:
        settings = root / LEGACY_SETTINGS
        if not settings.is_file():
            raise ConfigError(
                f"--from-settings: {settings} does not exist",
                hint="run it in the folder that holds migrations/settings.py",
            )
        text, variables = _convert_settings(settings)
    else:
        text = _TEMPLATE.format(database=_database_name(root.name))
    created: list[Path] = []
    for folder in ("migrations", "querysets"):
        path = root / folder
        if not path.exists():
            path.mkdir(parents=True)
            created.append(path)
    tmp = config_path.with_name(f".{CONFIG_NAME}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(config_path)
    created.insert(0, config_path)
    steps = [
        f"edit {config_path.name}: set each environment's url",
        "monarch list_environments",
        "monarch generate my_first_migration",
    ]
    if variables:
        steps.insert(0, "(each variable holds the value as it is; monarch encodes it in the URL)")
        steps.insert(0, "export " + " ".join(f"{v}=..." for v in variables))
    return InitResult(config_path, tuple(created), variables, tuple(steps))


def list_environments(config: Config) -> list[Environment]:
    """The configured environments, in the order of the config file."""
    return list(config.environments.values())


def _database_name(folder: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", folder).strip("_").lower() or "myapp"
    return f"{name}_dev"


def _convert_settings(settings: Path) -> tuple[str, tuple[str, ...]]:
    data = read_legacy_settings(settings)
    variables: list[str] = []
    lines = [
        "# Converted from migrations/settings.py by `monarch init --from-settings`.",
        "# Passwords were not copied: set the environment variables named below to each password",
        "# as it is; monarch percent-encodes a ${VAR} that stands in a URL's user or password.",
        "",
        'migrations = "migrations"',
        'querysets = "querysets"',
    ]
    backups: dict[str, Any] = dict(data.get("backups", {"url": "file://backups"}))
    if "aws_secret_access_key" in backups:
        backups["aws_access_key_id"] = "${AWS_ACCESS_KEY_ID}"
        backups["aws_secret_access_key"] = "${AWS_SECRET_ACCESS_KEY}"
        variables += ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    lines += ["", "[backups]", *(f"{k} = {_toml_str(v)}" for k, v in backups.items())]
    for name, env in data["environments"].items():
        url = env["url"]
        scheme, _, rest = url.partition("://")
        netloc, slash, tail = rest.partition("/")
        user, password, hosts = split_userinfo(netloc)
        if password:
            var = re.sub(r"[^A-Z0-9]+", "_", f"MONARCH_{name}_PASSWORD".upper())
            variables.append(var)
            url = f"{scheme}://{user}:${{{var}}}@{hosts}{slash}{tail}"
        lines += ["", f"[environments.{_toml_key(name)}]", f"url = {_toml_str(url)}"]
    return "\n".join(lines) + "\n", tuple(variables)


def _toml_str(value: object) -> str:
    # A JSON string without ASCII escaping is a valid TOML basic string.
    return json.dumps(str(value), ensure_ascii=False)


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_str(name)
