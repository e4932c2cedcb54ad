"""This checkout's own encryption key, for the development server and `make serve` on the same machine.

Without `INTEGRATIONS_ENCRYPTION_KEYS`, sessions stored by `make run` used to be encrypted with a key derived from
the development SECRET_KEY, which `make serve` (another SECRET_KEY, a generated key) could not read: every channel
needed reconnecting. Now `make run`, `make worker` and `make serve` share one key in `var/encryption_key`
(generated once, mode 0600, git-ignored): settings.py reads it in development, the Makefile exports it for
`make serve`. A real deployment sets INTEGRATIONS_ENCRYPTION_KEYS and never reads this file.
"""

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from integrations.security.crypto import development_key


def checkout_key(path: Path) -> str:
    """The key in `path`, made first when there is none (atomically: a second process starting at the same time
    reads the first one's key, never a half-written file)."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".encryption_key-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode("ascii") + "\n")
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile: theirs wins
            os.link(draft, path)
    finally:
        os.unlink(draft)
    return path.read_text().strip()


def development_keys(path: Path, secret_key: str) -> list[str]:
    """The keys of a development server: this checkout's key (it encrypts), then the key derived from SECRET_KEY
    that development used before it (it only decrypts, so sessions stored then are still read; a refresh stores
    them under the first key). An unwritable checkout gets [] (the derived key alone, and check's W001)."""
    try:
        return [checkout_key(path), development_key(secret_key)]
    except OSError:
        return []
