"""The one place that encrypts and decrypts secrets at rest (session tokens).

Keys come from the setting `INTEGRATIONS_ENCRYPTION_KEYS` (Fernet keys; the first encrypts, every key decrypts,
so a new key is rotated in by putting it first). Without keys, a key derived from SECRET_KEY is used: fine for
local development, refused by a system check when DEBUG is off.
"""

import base64
import binascii
import hashlib
import hmac
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from integrations.conf import app_settings


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


class Secret(str):
    """A secret string (a session token, an app password) whose `repr` is masked.

    It behaves as the string it holds everywhere it is used (headers, comparisons, encryption), but error reports,
    debug pages and logs that show a value with `repr`/`pprint` see only stars, whichever frame holds it.
    `readable` is False for a stored secret that no configured key decrypts: the value is then empty.
    """

    readable: bool

    def __new__(cls, value: str = "", *, readable: bool = True) -> "Secret":
        instance = super().__new__(cls, value)
        instance.readable = readable
        return instance

    def __repr__(self) -> str:
        return "Secret('********')" if self else "Secret('')"

    def __reduce__(self) -> tuple:
        return (_rebuild_secret, (str(self), self.readable))


def _rebuild_secret(value: str, readable: bool) -> Secret:
    return Secret(value, readable=readable)


def configured_keys() -> list[str]:
    """The Fernet keys from settings, blanks dropped."""
    return [k.strip() for k in app_settings.ENCRYPTION_KEYS if k and k.strip()]


def uses_fallback_key() -> bool:
    """True when no key is configured and the SECRET_KEY-derived development key is in use."""
    return not configured_keys()


def development_key(secret_key: str) -> str:
    """The key derived from a SECRET_KEY: what encrypts while no key is configured (development only)."""
    digest = hashlib.sha256(b"skyport-integrations-dev-key:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _fallback_key() -> bytes:
    return development_key(settings.SECRET_KEY).encode("ascii")


@cache
def _fernet(keys: tuple[str, ...], fallback: bytes) -> MultiFernet:
    try:
        fernets = [Fernet(k) for k in keys] or [Fernet(fallback)]
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "INTEGRATIONS_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from exc
    return MultiFernet(fernets)


def get_fernet() -> MultiFernet:
    """The MultiFernet for the current settings (cached per key set)."""
    return _fernet(tuple(configured_keys()), _fallback_key())


@cache
def _signing_keys(keys: tuple[str, ...], fallback: bytes) -> tuple[bytes, ...]:
    _fernet(keys, fallback)  # the same ImproperlyConfigured as get_fernet() for a bad key
    return tuple(base64.urlsafe_b64decode(key)[:16] for key in (keys or (fallback,)))


def key_index(ciphertext: str) -> int | None:
    """Which configured key (0 = the first, the one that encrypts) made `ciphertext`; None when none did.

    Only the token's HMAC is checked, nothing is decrypted: cheap enough for a list of rows, and it never holds a
    plaintext. A Fernet token is `0x80 | timestamp(8) | iv(16) | ciphertext | hmac(32)`, url-safe base64, and its
    HMAC-SHA256 covers everything before the HMAC, keyed with the first half of the Fernet key.
    """
    try:
        data = base64.urlsafe_b64decode(ciphertext.encode("ascii"))
    except (binascii.Error, ValueError):
        return None
    if len(data) < 1 + 8 + 16 + 16 + 32 or data[0] != 0x80:
        return None
    signed, signature = data[:-32], data[-32:]
    for index, key in enumerate(_signing_keys(tuple(configured_keys()), _fallback_key())):
        if hmac.compare_digest(hmac.new(key, signed, hashlib.sha256).digest(), signature):
            return index
    return None


def encrypt(plaintext: str) -> str:
    """Encrypt a string with the first configured key."""
    return get_fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    """Decrypt a string; raises DecryptionError (never returns the ciphertext) when no key fits."""
    try:
        return get_fernet().decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError(
            "A stored secret could not be decrypted: was INTEGRATIONS_ENCRYPTION_KEYS changed without keeping "
            "the old key?"
        ) from exc


def generate_key() -> str:
    """A new random Fernet key, for `.env`."""
    return Fernet.generate_key().decode("ascii")
