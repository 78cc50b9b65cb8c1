"""age encryption of backups, streamed, through the ``pyrage`` library (``monarch[encryption]``).

monarch writes no cryptography: the age format (https://age-encryption.org/v1) and its ciphers
are ``pyrage``'s, bindings of ``rage``, the Rust implementation of age. What is here is plumbing:

- :class:`EncryptingWriter` sits in the backup writer's pipeline (compressed bytes in, age file
  out) and :class:`DecryptingReader` in the checked reader (age file in, compressed bytes out).
  ``pyrage`` pumps a whole stream from a reader into a writer and releases the GIL while it
  works, so each runs on its own thread, joined to the pipeline by a bounded pipe: memory stays
  bounded (the pipe plus age's 64 KiB chunks) and no byte of plaintext touches the disk.
- :func:`seal` and :func:`unseal` encrypt small texts (the manifest's sealed contents) whole.
- A passphrase cannot be streamed by ``pyrage`` (its scrypt API takes and returns whole byte
  strings), so a passphrase-protected backup is encrypted to a fresh X25519 key made for it,
  and that key, encrypted with the passphrase (an age scrypt file), travels in the manifest.
  The age command reads such a passphrase-protected identity file by itself (``age -d -i``).

``pyrage`` is imported only when a backup is encrypted or decrypted; without it, those fail
with :class:`~monarch.errors.EncryptionError` naming the extra to install: never a plaintext
backup in its place.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monarch.backups._pipe import Pipe, PipeClosed
from monarch.errors import ArchiveError, EncryptionError, MonarchError

if TYPE_CHECKING:
    from monarch.io import Buffer, Readable, Writable

PIPE_CAPACITY = 4 * 1024 * 1024
"""Bytes held between the pipeline and the age thread at most (either direction)."""

INSTALL_HINT = "install it: pip install 'monarch[encryption]' (the pyrage package)"


def age_library() -> Any:
    """The ``pyrage`` module, or EncryptionError (one line, naming the extra) without it."""
    try:
        import pyrage  # optional (monarch[encryption]): only encrypted backups need it
    except ImportError:
        raise EncryptionError(
            "backups here are encrypted, but the age library (pyrage) is not installed; "
            "nothing was written or read", hint=INSTALL_HINT) from None
    return pyrage


def fingerprint(recipient: str) -> str:
    """A recipient's short public name in manifests: the first 16 hex digits of the SHA-256
    of its ``age1...`` text. Public keys are not secret, but the manifest needs only this."""
    return hashlib.sha256(recipient.strip().encode("ascii")).hexdigest()[:16]


def parse_recipients(texts: tuple[str, ...]) -> list[Any]:
    """``pyrage`` X25519 recipients for ``age1...`` strings; EncryptionError on a bad one."""
    x25519 = age_library().x25519
    parsed = []
    for text in texts:
        try:
            parsed.append(x25519.Recipient.from_str(text))
        except Exception:
            shown = text if len(text) < 90 else text[:20] + "..."
            raise EncryptionError(f"[backups] encrypt_to: {shown!r} is not an age X25519 "
                                  "recipient (age1...); no backup was written",
                                  hint="print a key's recipient with `age-keygen -y key.txt`"
                                  ) from None
    return parsed


def new_key(passphrase: str) -> tuple[str, Any, str]:
    """A fresh X25519 key for one backup: (its recipient text, recipient, the identity
    encrypted with ``passphrase`` as an armored age scrypt file)."""
    pyrage = age_library()
    identity = pyrage.x25519.Identity.generate()
    wrapped = pyrage.passphrase.encrypt(str(identity).encode("ascii"), passphrase, armored=True)
    public = identity.to_public()
    return str(public), public, wrapped.decode("ascii")


def unwrap_key(wrapped: str, passphrase: str, what: str) -> Any:
    """The identity :func:`new_key` wrapped; EncryptionError for a wrong passphrase."""
    pyrage = age_library()
    try:
        text = pyrage.passphrase.decrypt(wrapped.encode("ascii"), passphrase)
        return pyrage.x25519.Identity.from_str(text.decode("ascii").strip())
    except Exception:
        raise EncryptionError(f"{what}: the passphrase does not open it; nothing was touched",
                              hint="check the variable [backups] passphrase_env names") from None


def load_identities(path: Path, source: str) -> list[tuple[str, Any]]:
    """(recipient fingerprint, identity) for every ``AGE-SECRET-KEY-1...`` line of an age
    identity file. The file's content never appears in an error."""
    x25519 = age_library().x25519
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise EncryptionError(f"cannot read the age identity file {path} ({source}): {reason}",
                              hint="check the path; nothing was touched") from None
    found = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identity = x25519.Identity.from_str(line)
        except Exception:
            raise EncryptionError(f"the age identity file {path} ({source}), line {number}, "
                                  "is not an X25519 identity (AGE-SECRET-KEY-1...)",
                                  hint="make one with `age-keygen -o key.txt`") from None
        found.append((fingerprint(str(identity.to_public())), identity))
    if not found:
        raise EncryptionError(f"the age identity file {path} ({source}) holds no identity",
                              hint="make one with `age-keygen -o key.txt`")
    return found


def seal(text: bytes, recipients: list[Any]) -> str:
    """``text`` encrypted to ``recipients``, as an armored age file."""
    sealed: bytes = age_library().encrypt(text, recipients, armored=True)
    return sealed.decode("ascii")


def unseal(sealed: str, identities: list[Any], what: str) -> bytes:
    """Decrypt what :func:`seal` made; EncryptionError when no identity opens it."""
    pyrage = age_library()
    try:
        plain: bytes = pyrage.decrypt(sealed.encode("ascii"), identities)
    except pyrage.DecryptError:
        raise EncryptionError(f"{what}: the identity given does not open it; nothing was "
                              "touched", hint="use an identity the backup was encrypted to"
                              ) from None
    except Exception as exc:  # damaged armor or ciphertext
        raise ArchiveError(f"{what} is damaged or was edited ({exc})") from None
    return plain


class EncryptingWriter:
    """Bytes written here leave, age-encrypted to ``recipients``, into ``sink``.

    :meth:`close` finishes the age file (and raises what went wrong on the way);
    :meth:`abort` stops the thread without finishing it. ``sink`` is written from the age
    thread, one write at a time.
    """

    def __init__(self, sink: Writable, recipients: list[Any]) -> None:
        self._pyrage = age_library()
        self._sink = _Relay(sink)
        self._recipients = recipients
        self._pipe = Pipe(PIPE_CAPACITY)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="monarch-age-encrypt",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._pyrage.encrypt_io(self._pipe, self._sink, self._recipients)
        except BaseException as exc:  # handed to the writing side
            self._error = self._sink.error or exc
            self._pipe.close_reader()

    def write(self, data: Buffer, /) -> int:
        try:
            return self._pipe.write(data)
        except PipeClosed:
            raise self._failure() from None

    def close(self) -> None:
        """Finish the age file: every byte written is encrypted into the sink."""
        self._pipe.close()
        self._thread.join()
        if self._error is not None:
            raise self._failure()

    def abort(self) -> None:
        """Stop encrypting (the upload is being dropped)."""
        self._pipe.fail(EncryptionError("the backup was stopped"))
        self._thread.join()

    def _failure(self) -> BaseException:
        error = self._error
        if isinstance(error, MonarchError | KeyboardInterrupt):
            return error
        return EncryptionError(f"encrypting the backup failed: {error}")


class _Relay:
    """Between pyrage and one end of the pipeline: remembers that end's own exception (a store
    error, the size cap) so the other side re-raises it rather than pyrage's wrapping of it."""

    def __init__(self, end: Any) -> None:
        self._end = end
        self.error: BaseException | None = None

    def write(self, data: bytes, /) -> int:
        try:
            self._end.write(data)
        except BaseException as exc:
            self.error = exc
            raise
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        try:
            data: bytes = self._end.read(size)
        except BaseException as exc:
            self.error = exc
            raise
        return data

    def flush(self) -> None:
        return None


class DecryptingReader:
    """Read ``source`` (an age file) decrypted with ``identities``.

    The age thread starts at once, and the first read waits for the header to be opened, so a
    wrong identity is raised before anything consumes the stream. Damaged or edited
    ciphertext raises :class:`~monarch.errors.ArchiveError` from ``read`` at the first chunk
    that fails age's authentication, and a cut-off file at its end.
    """

    def __init__(self, source: Readable, identities: list[Any], what: str) -> None:
        self._pyrage = age_library()
        self._source = _Relay(source)
        self._identities = identities
        self._what = what
        self._pipe = Pipe(PIPE_CAPACITY)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="monarch-age-decrypt",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._pyrage.decrypt_io(self._source, self._pipe, self._identities)
        except PipeClosed:
            self._pipe.close()  # the reading side stopped first: nothing to report
        except BaseException as exc:
            self._pipe.fail(self._translate(exc))
        else:
            self._pipe.close()

    def _translate(self, exc: BaseException) -> BaseException:
        if self._source.error is not None:
            return self._source.error  # the store's error, or the size cap's
        if isinstance(exc, self._pyrage.DecryptError) and "No matching keys" in str(exc):
            return EncryptionError(f"{self._what}: the identity given does not open it; "
                                   "nothing was touched",
                                   hint="use an identity the backup was encrypted to")
        return ArchiveError(f"{self._what} does not decrypt: its ciphertext is damaged or was "
                            f"edited (age: {exc})",
                            hint="the stored archive is damaged; restore another backup")

    def read(self, size: int = -1, /) -> bytes:
        if self._closed:
            raise ValueError("read of a closed decrypting reader")
        data = self._pipe.read(size)
        if not data and size != 0:
            self._thread.join()
        return data

    def close(self) -> None:
        """Stop decrypting (the reader is done, or gave up)."""
        self._closed = True
        self._pipe.close_reader()
        self._thread.join()
