"""The keys a store's backups are protected with, gathered from the configuration and the
environment once per command: who backups are encrypted to, how restores decrypt them, and
the key that authenticates manifests.

``[backups]`` settings (docs/security.md)::

    encrypt_to = ["age1..."]                 # X25519 recipients: public, no secret needed
    passphrase_env = "MONARCH_BACKUP_PASSPHRASE"   # or/and: a passphrase, from this variable
    identity = "~/.config/monarch/age.txt"   # the identity file restores decrypt with
    manifest_key_env = "MONARCH_MANIFEST_KEY"      # HMAC-SHA256 key of manifests

The identity file is, first to last: ``--identity FILE``, ``$MONARCH_AGE_IDENTITY``, the
``identity`` setting. Secrets (passphrase, HMAC key) are kept as
:class:`~monarch.secrets.Secret` and never shown; an identity file's path may be shown, its
content never.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monarch.backups.encryption import (
    fingerprint,
    load_identities,
    new_key,
    parse_recipients,
    unwrap_key,
)
from monarch.errors import ConfigError, EncryptionError
from monarch.secrets import Secret
from monarch.text import user_path

if TYPE_CHECKING:
    from monarch.backups.manifest import Encryption
    from monarch.config import StoreConfig

IDENTITY_VARIABLE = "MONARCH_AGE_IDENTITY"
MIN_MANIFEST_KEY = 32
"""Characters an HMAC key must have at least (``openssl rand -hex 32`` gives 64)."""


@dataclass(frozen=True)
class Sealing:
    """How one backup is being encrypted: to these recipients (pyrage objects), recorded in
    its manifest by fingerprint, with ``wrapped_key`` when a passphrase protects it."""

    recipients: list[Any]
    fingerprints: tuple[str, ...]
    wrapped_key: str | None


@dataclass(frozen=True)
class BackupKeys:
    """A store's keys (see the module). ``BackupKeys()`` is a store without any: backups
    are written in the clear and manifests without a tag."""

    recipients: tuple[str, ...] = ()
    passphrase: Secret | None = None
    passphrase_variable: str | None = None
    identity_file: Path | None = None
    identity_source: str = ""
    manifest_key: Secret | None = None
    manifest_key_variable: str | None = None
    opened: dict[tuple[str, ...], list[Any]] = field(default_factory=dict, compare=False,
                                                     repr=False)
    """Identities already found per backup's recipients (the file is read, a passphrase's
    scrypt run, once per command)."""

    @property
    def encrypts(self) -> bool:
        """Whether new backups must be encrypted (a recipient or a passphrase is configured)."""
        return bool(self.recipients) or self.passphrase_variable is not None

    def sealing(self) -> Sealing:
        """Start encrypting one backup, or raise EncryptionError, before anything is written:
        a store configured for encryption never gets a plaintext backup."""
        recipients = parse_recipients(self.recipients)
        fingerprints = [fingerprint(r) for r in self.recipients]
        wrapped = None
        if self.passphrase_variable is not None:
            if not self.passphrase:
                raise EncryptionError(
                    f"[backups] passphrase_env names ${self.passphrase_variable}, which is not "
                    "set (or empty); no backup was written",
                    hint=f"export {self.passphrase_variable}=... where backups run")
            text, public, wrapped = new_key(self.passphrase.reveal())
            recipients.append(public)
            fingerprints.append(fingerprint(text))
        return Sealing(recipients, tuple(fingerprints), wrapped)

    def identities(self, encryption: Encryption, what: str) -> list[Any]:
        """The identities that open a backup encrypted as ``encryption`` says, or
        EncryptionError: none given, or none of them one of its recipients."""
        known = self.opened.get(encryption.recipients)
        if known is None:
            known = self.opened[encryption.recipients] = self._identities(encryption, what)
        return known

    def _identities(self, encryption: Encryption, what: str) -> list[Any]:
        if encryption.wrapped_key is not None and self.passphrase:
            return [unwrap_key(encryption.wrapped_key, self.passphrase.reveal(), what)]
        if self.identity_file is None:
            via = ("--identity FILE, $MONARCH_AGE_IDENTITY or [backups] identity"
                   + (f", or the passphrase in ${self.passphrase_variable}"
                      if encryption.wrapped_key is not None and self.passphrase_variable
                      else ""))
            raise EncryptionError(f"{what} is encrypted and no age identity was given; "
                                  "nothing was touched", hint=f"give one: {via}")
        loaded = load_identities(self.identity_file, self.identity_source)
        wanted = set(encryption.recipients)
        matching = [identity for fp, identity in loaded if fp in wanted]
        if not matching:
            raise EncryptionError(
                f"{what} is encrypted to recipient(s) {', '.join(encryption.recipients)}; the "
                f"identity file {self.identity_file} ({self.identity_source}) holds none of "
                "them; nothing was touched",
                hint="use the identity of one of those recipients")
        return matching


def keys_for(store: StoreConfig, *, identity: str | Path | None = None,
             environ: Mapping[str, str] | None = None) -> BackupKeys:
    """The keys of ``store``'s backups. ``identity`` is the ``--identity`` option."""
    env = os.environ if environ is None else environ
    passphrase_variable = _variable(store, "passphrase_env")
    key_variable = _variable(store, "manifest_key_env")
    manifest_key = None
    if key_variable is not None:
        value = env.get(key_variable, "")
        if len(value) < MIN_MANIFEST_KEY:
            raise ConfigError(
                f"[backups] manifest_key_env names ${key_variable}, which is "
                + ("not set" if not value else f"shorter than {MIN_MANIFEST_KEY} characters")
                + "; manifests cannot be authenticated, so nothing was done",
                hint=f"export {key_variable}=$(openssl rand -hex 32), the same everywhere")
        manifest_key = Secret(value)
    file: Path | None = None
    source = ""
    if identity is not None:
        file, source = user_path(str(identity)), "--identity"
    elif env.get(IDENTITY_VARIABLE):
        file, source = user_path(env[IDENTITY_VARIABLE]), f"${IDENTITY_VARIABLE}"
    elif store.identity is not None:
        file, source = store.identity, "[backups] identity"
    passphrase = None
    if passphrase_variable is not None and env.get(passphrase_variable):
        passphrase = Secret(env[passphrase_variable])
    return BackupKeys(
        recipients=store.encrypt_to, passphrase=passphrase,
        passphrase_variable=passphrase_variable, identity_file=file, identity_source=source,
        manifest_key=manifest_key, manifest_key_variable=key_variable)


def _variable(store: StoreConfig, option: str) -> str | None:
    value = store.options.get(option)
    if value is None:
        return None
    name = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
        # The value is not shown: it may be the secret itself, put there by mistake.
        raise ConfigError(f"[backups] {option} must be the name of an environment variable "
                          "(letters, digits and _), not its value",
                          hint=f'{option} = "MONARCH_..."')
    return name
