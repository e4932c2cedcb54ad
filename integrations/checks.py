"""System checks: misconfiguration is reported by `manage.py check` (and at server start), never a crash."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from integrations.conf import app_settings
from integrations.security import crypto, rotation


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


# Tagged `database`: Django runs it only when asked for a database (`manage.py check --database default`, and
# `migrate`), never at every `manage.py` start, because it reads every stored secret (the HMAC only; nothing is
# decrypted). A cap would be cheaper but would miss rows, and a deploy step wants the whole answer.
@checks.register(checks.Tags.database)
def check_stored_secrets(
    app_configs: Any = None, databases: list[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Stored secrets the first key did not encrypt (W003) or that no configured key decrypts (W004)."""
    messages: list[checks.CheckMessage] = []
    for alias in databases or []:
        try:
            report = rotation.scan(using=alias, app_configs=app_configs)
        except (DatabaseError, ImproperlyConfigured):
            continue  # an unreachable database or a bad key: reported elsewhere (E002), not here
        where = f" (database {alias!r})" if len(databases) > 1 else ""
        if report.stale:
            messages.append(
                checks.Warning(
                    f"{report.stale} stored secret(s){where} are encrypted with an older key of "
                    "INTEGRATIONS_ENCRYPTION_KEYS, not the first one: dropping that key would make them unreadable.",
                    hint="Run: python manage.py integrations_reencrypt (then integrations_reencrypt --check before "
                    "dropping the old key).",
                    id="integrations.W003",
                )
            )
        if report.unreadable:
            messages.append(
                checks.Warning(
                    f"{report.unreadable} stored secret(s){where} cannot be decrypted with any key in "
                    "INTEGRATIONS_ENCRYPTION_KEYS: their channels need reconnection.",
                    hint="If a key was dropped too early, put it back (after the first one) and run python manage.py "
                    "integrations_reencrypt; it also lists the rows concerned.",
                    id="integrations.W004",
                )
            )
    return messages


@checks.register()
def check_site_url(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E-mails need absolute links: INTEGRATIONS_SITE_URL must be an http(s) address, and is expected in production
    while owners are e-mailed."""
    value = app_settings.SITE_URL.strip() if isinstance(app_settings.SITE_URL, str) else ""
    if not value:
        if settings.DEBUG or not app_settings.NOTIFY_OWNERS:
            return []
        return [
            checks.Warning(
                "INTEGRATIONS_SITE_URL is not set: the links in e-mails to channel owners are relative (/app/…), "
                "which no mail reader can open.",
                hint="Set it to the site's address as users reach it, e.g. SITE_URL=https://skyport.example.com "
                "in .env (the setting INTEGRATIONS_SITE_URL).",
                id="integrations.W006",
            )
        ]
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return [
            checks.Error(
                f"INTEGRATIONS_SITE_URL is {value!r}, not the address of a site.",
                hint="Use the scheme and host users reach the site at, e.g. https://skyport.example.com.",
                id="integrations.E004",
            )
        ]
    return []


@checks.register(checks.Tags.caches)
def check_option_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The option cache must be shared between processes, or a save would not reach the other workers."""
    alias = app_settings.CACHE_ALIAS
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
        "DEFAULT_EXCEPTION_REPORTER": (settings.DEFAULT_EXCEPTION_REPORTER, SecretsExceptionReporter),
        "DEFAULT_EXCEPTION_REPORTER_FILTER": (settings.DEFAULT_EXCEPTION_REPORTER_FILTER, SecretsReporterFilter),
    }
    missing = []
    for name, (path, cls) in wanted.items():
        try:
            configured = import_string(path)
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


@checks.register()
def check_setting_types(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every INTEGRATIONS_* setting must have a type the app can use (see `integrations.conf.SETTINGS`)."""
    return [
        checks.Error(
            f"{setting.full_name} is {type(value).__name__} {value!r}, but must be "
            + " or ".join("None" if t is type(None) else t.__name__ for t in setting.types)
            + ".",
            hint=setting.help,
            id="integrations.E010",
        )
        for setting, value in app_settings.wrong_types()
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_rate_limits_survive_rollbacks(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Rate limits are counted in the database, through a second connection when the request's transaction would
    roll the count back; SQLite cannot take that second writer, so there a refused API call does not count."""
    from django.db import connections, router

    from integrations.models import RateCounter

    alias = router.db_for_write(RateCounter)
    settings_dict = connections.settings[alias]
    if not settings_dict.get("ATOMIC_REQUESTS") or "sqlite3" not in settings_dict.get("ENGINE", ""):
        return []
    return [
        checks.Warning(
            f"ATOMIC_REQUESTS is on for the SQLite database {alias!r}: a connect attempt, upload or preview that the "
            "API refuses is rolled back with its request, so it does not count against its rate limit.",
            hint="Use PostgreSQL in production (the limits are then counted through a second connection), or turn "
            "ATOMIC_REQUESTS off.",
            id="integrations.W008",
        )
    ]


MIDDLEWARE_PATH = "integrations.middleware.RequestSizeLimitMiddleware"


@checks.register(checks.Tags.security)
def check_request_size_limit(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Uploads must be refused by their size before anything reads them (the CSRF middleware parses every POST)."""
    middleware = list(settings.MIDDLEWARE or [])
    csrf = "django.middleware.csrf.CsrfViewMiddleware"
    if MIDDLEWARE_PATH in middleware and (
        csrf not in middleware or middleware.index(MIDDLEWARE_PATH) < middleware.index(csrf)
    ):
        return []
    return [
        checks.Warning(
            f"{MIDDLEWARE_PATH} is not in MIDDLEWARE before CsrfViewMiddleware: a request of any size is read (and "
            "its uploads written to temporary files) before the app can refuse it.",
            hint=f'Add "{MIDDLEWARE_PATH}" to MIDDLEWARE just before "{csrf}", and set the reverse proxy\'s body '
            "limit (nginx: client_max_body_size) to INTEGRATIONS_MAX_REQUEST_BYTES.",
            id="integrations.W007",
        )
    ]
