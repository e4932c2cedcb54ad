"""The registry of integration options and the one function that resolves them.

Resolution order: a non-empty value stored in the database (`IntegrationOption`), else the app setting the
project fills from its environment (`OptionDef.setting`), else the default. Providers register their options here
(see `integrations.bluesky.options`). Stored values are read through Django's cache (one entry for all options),
so a warm request costs no query. The entry is keyed by a version that every save or delete replaces (again on
commit): a reader that loaded the old rows just before a commit can only re-cache them under the old version,
which nobody reads any more, so every process sharing the cache sees the new values.
"""

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from django.apps import apps
from django.core.cache import caches
from django.db import DatabaseError

from integrations.conf import app_settings

logger = logging.getLogger(__name__)

VERSION_KEY = "integrations:options:version"
CACHE_TIMEOUT = 60 * 60 * 24


class Source(StrEnum):
    DB = "db"
    ENV = "env"
    DEFAULT = "default"


@dataclass(frozen=True)
class OptionDef:
    """One typed option: its key, the app setting that may set it (the project fills that setting from its
    environment variable `env_var`), its default and how to clean a value."""

    key: str
    label: str
    default: str
    setting: str | None = None
    env_var: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    clean: Callable[[str], str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ResolvedOption:
    value: str
    source: Source
    raw_env: str | None = None


REGISTRY: dict[str, OptionDef] = {}


def register(option: OptionDef) -> OptionDef:
    """Add an option to the registry (keys are unique)."""
    if option.key in REGISTRY:
        raise ValueError(f"Option {option.key!r} is registered twice.")
    REGISTRY[option.key] = option
    return option


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def _values_key(version: str) -> str:
    return f"integrations:options:values:{version}"


def _current_version() -> str:
    cache = _cache()
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, uuid.uuid4().hex, None)  # add: never overwrite a version another process set
        version = cache.get(VERSION_KEY) or ""
    return version


def cached_values() -> dict[str, str] | None:
    """What the cache holds for the current version (None when cold)."""
    return _cache().get(_values_key(_current_version()))


# The values this process read last, with their version. Every save moves all processes to a new version, so
# values are re-read only when it moves; the version itself is read from the shared cache on every call.
_last_read: tuple[str, dict[str, str]] | None = None


def stored_values() -> dict[str, str]:
    """All option values stored in the database: one cache read while the version stays (two when the version
    moves, one query when the cache is cold)."""
    global _last_read
    version = _current_version()
    last = _last_read
    if version and last is not None and last[0] == version:  # no version: a cache that keeps nothing (dummy)
        return dict(last[1])
    values = _cache().get(_values_key(version))
    if values is None:
        option_model = apps.get_model("integrations", "IntegrationOption")  # models imports us, not the reverse
        try:
            values = dict(option_model.objects.values_list("key", "value"))
        except DatabaseError:  # table missing before `migrate`: behave as if nothing is stored
            logger.warning("integration options table is not readable; using env and defaults")
            return {}
        _cache().set(_values_key(version), values, CACHE_TIMEOUT)
    _last_read = (version, values)
    return dict(values)


def fingerprint(values: dict[str, str]) -> str:
    """A short digest of option values (empty ones count as unset): what an edit form saw, to notice that someone
    else saved meanwhile."""
    canonical = json.dumps(sorted((key, value) for key, value in values.items() if value))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stored_fingerprint() -> str:
    """The fingerprint of the values stored now (from the cache when warm)."""
    return fingerprint(stored_values())


def invalidate() -> None:
    """Move every process to a new cache version (called on every save and delete of an IntegrationOption)."""
    _cache().set(VERSION_KEY, uuid.uuid4().hex, None)


def resolve(key: str) -> ResolvedOption:
    """The value in force for an option and where it comes from (db, env or default)."""
    option = REGISTRY[key]
    stored = (stored_values().get(key) or "").strip()
    raw_env = str(getattr(app_settings, option.setting) or "").strip() if option.setting else ""
    if stored:
        return ResolvedOption(stored, Source.DB, raw_env or None)
    if raw_env:
        return ResolvedOption(raw_env, Source.ENV, raw_env)
    return ResolvedOption(option.default, Source.DEFAULT)
