"""Keys and configuration for the encrypted-backup tests: age identities made with pyrage (the
library monarch encrypts with), written as the files ``age-keygen`` writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyrage

HMAC_VARIABLE = "MONARCH_TEST_MANIFEST_KEY"
PASSPHRASE_VARIABLE = "MONARCH_TEST_BACKUP_PASSPHRASE"


@dataclass(frozen=True)
class AgeKey:
    """One X25519 key pair: its identity file and its public recipient."""

    path: Path
    recipient: str
    secret: str


def make_key(folder: Path, name: str = "key") -> AgeKey:
    """An age identity file ``folder/name.txt`` (as ``age-keygen -o`` writes it)."""
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    path = folder / f"{name}.txt"
    path.write_text(f"# created: by the test\n# public key: {recipient}\n{identity}\n")
    path.chmod(0o600)
    return AgeKey(path, recipient, str(identity))


def add_backup_settings(config_path: Path, *lines: str) -> None:
    """Add TOML ``lines`` to the ``[backups]`` table of a test project's monarch.toml."""
    text = config_path.read_text()
    if "[backups]" in text:
        text = text.replace("[backups]\n", "[backups]\n" + "".join(f"{x}\n" for x in lines), 1)
    else:  # backups = "file://..." form
        first, _, rest = text.partition("\n")
        url = first.split("=", 1)[1].strip()
        text = "[backups]\nurl = " + url + "\n" + "".join(f"{x}\n" for x in lines) + rest
    config_path.write_text(text)


def encrypt_to(config_path: Path, *recipients: str) -> None:
    quoted = ", ".join(f'"{r}"' for r in recipients)
    add_backup_settings(config_path, f"encrypt_to = [{quoted}]")


def decrypt_file(path: Path, key: AgeKey) -> bytes:
    """What ``age -d -i KEY FILE`` prints (pyrage stands in for the age command, absent here)."""
    identity = pyrage.x25519.Identity.from_str(key.secret)
    return bytes(pyrage.decrypt(path.read_bytes(), [identity]))
