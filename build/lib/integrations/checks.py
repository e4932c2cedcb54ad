"""System checks: misconfiguration is reported by `manage.py check` (and at server start), never a crash."""

import os
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured, ValidationError

from integrations import crypto, options
from integrations.validators import normalize_service_url


@checks.register(checks.Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Keys must be valid Fernet keys; without any, production refuses to run and development is warned."""
    if crypto.uses_fallback_key():
        if settings.DEBUG:
            return [
                checks.Warning(
                    "INTEGRATIONS_ENCRYPTION_KEYS is not set: tokens are encrypted with a key derived from "
                    "SECRET_KEY (development only).",
                    hint="Add INTEGRATIONS_ENCRYPTION_KEYS to .env: python manage.py integrations_generate_key",
                    id="integrations.W001",
                )
            ]
        return [
            checks.Error(
                "INTEGRATIONS_ENCRYPTION_KEYS is not set and DEBUG is off: stored Bluesky sessions would be "
                "encrypted with a key derived from SECRET_KEY.",
                hint="Add INTEGRATIONS_ENCRYPTION_KEYS to the environment: python manage.py integrations_generate_key",
                id="integrations.E001",
            )
        ]
    try:
        crypto.get_fernet()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="Generate one with: python manage.py integrations_generate_key",
                id="integrations.E002",
            )
        ]
    return []


@checks.register()
def check_service_url_env(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A bad BLUESKY_SERVICE_URL is reported here instead of failing at the first connection."""
    env_var = options.BLUESKY_SERVICE_URL.env_var
    raw = os.environ.get(env_var or "", "").strip()
    if not raw:
        return []
    try:
        normalize_service_url(raw)
    except ValidationError as exc:
        return [
            checks.Error(
                f"{env_var} is not a usable PDS URL: {' '.join(exc.messages)}",
                hint="Fix it in .env or the environment (e.g. https://bsky.social), or leave it unset. Local "
                "http:// servers need INTEGRATIONS_ALLOW_INSECURE_PDS=true.",
                id="integrations.E003",
            )
        ]
    return []


@checks.register(checks.Tags.caches)
def check_option_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The option cache must be shared between processes, or a save would not reach the other workers."""
    alias = getattr(settings, "INTEGRATIONS_CACHE_ALIAS", "default")
    backend = type(caches[alias]).__name__
    if backend in ("LocMemCache", "DummyCache") and not settings.DEBUG:
        return [
            checks.Warning(
                f"The cache {alias!r} ({backend}) is private to each process: integration settings saved in the "
                "admin would not reach the other server processes until they restart.",
                hint="Use a shared cache (CACHE_URL=redis://… or a file cache).",
                id="integrations.W002",
            )
        ]
    return []


@checks.register(checks.Tags.security)
def check_exception_reporter(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Error reports should use the app's reporter and filter, which mask tokens and app passwords everywhere."""
    from django.utils.module_loading import import_string

    from integrations.reporting import SecretsExceptionReporter, SecretsReporterFilter

    wanted = {
        "DEFAULT_EXCEPTION_REPORTER": SecretsExceptionReporter,
        "DEFAULT_EXCEPTION_REPORTER_FILTER": SecretsReporterFilter,
    }
    missing = []
    for name, cls in wanted.items():
        try:
            configured = import_string(getattr(settings, name))
        except ImportError:
            configured = None
        if not (isinstance(configured, type) and issubclass(configured, cls)):
            missing.append(f'{name} = "{cls.__module__}.{cls.__qualname__}"')
    if not missing:
        return []
    return [
        checks.Warning(
            "Error reports (the DEBUG page, admin e-mails) may show Bluesky session tokens or app passwords held "
            "by code outside this app.",
            hint="Add to your settings (or subclass these): " + "; ".join(missing),
            id="integrations.W005",
        )
    ]
