"""Settings for the Skyport demo project.

Everything a self-hoster changes comes from the environment (or a `.env` file beside `manage.py`): see
`.env.example` for the keys.
"""

import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; missing file is fine

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="django-insecure-dev-only-change-me" if DEBUG else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set SECRET_KEY in the environment or .env (or DEBUG=true for local development).")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks_db",
    "integrations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files (the admin's, the API docs' Swagger UI) from the app server itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # pages in the browser's language where a catalogue exists
    "django.middleware.common.CommonMiddleware",
    # Refuses a body over INTEGRATIONS_MAX_REQUEST_BYTES by its Content-Length, before anything reads it.
    "integrations.middleware.RequestSizeLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# SQLite by default; DATABASE_URL (e.g. postgres://user@host/db) switches without code changes.
# TEST_DATABASE_URL, when set, is what the test suite runs on (CI sets it to the local PostgreSQL).
DATABASES = {
    "default": env.db_url(
        "TEST_DATABASE_URL" if env("TEST_DATABASE_URL", default="") else "DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        # IMMEDIATE takes the write lock at BEGIN, so `select_for_update` sections (token refresh) serialise
        # across threads and processes on SQLite as they do on PostgreSQL.
        {"transaction_mode": "IMMEDIATE", "timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file (not :memory:) so tests can read its bytes and share it with worker processes.
    DATABASES["default"]["TEST"] = {
        "NAME": env("TEST_SQLITE_PATH", default=str(Path(tempfile.gettempdir()) / "skyport-test.sqlite3"))
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The option cache and connect throttle must be shared by every server process: Redis in production
# (CACHE_URL=redis://127.0.0.1:6379/1, atomic counters), a file cache in the project's var/ on one machine by
# default (private to this checkout; Django creates it with mode 0700).
CACHES = {"default": env.cache_url("CACHE_URL", default=f"filecache://{BASE_DIR / 'var' / 'cache'}")}

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# In production WhiteNoise serves the files `collectstatic` wrote: compressed, with hashed names cached for a year.
# In DEBUG, `runserver` serves them straight from the apps (no collectstatic needed).
# Uploaded post images (private: served only through the app's owner-checked views, never from MEDIA_URL).
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- HTTPS (production) ----------------------------------------------------------------------------------------
# With DEBUG off everything assumes HTTPS: http:// is redirected, cookies are Secure, HSTS is sent. Each can be
# switched from the environment (`make serve` switches the first three off to serve http://127.0.0.1:8000).
# Behind a TLS-terminating proxy, name the header it sets, e.g. SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO
# (the proxy must set or strip it on every request; the value is then compared with "https").
if _proxy_ssl_header := env("SECURE_PROXY_SSL_HEADER", default=""):
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# One hour to start with; raise to 31536000 (a year) once HTTPS is known to work. Sent on HTTPS responses only.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 3600)
# Off by default: they commit every subdomain (and, preloaded, browsers' built-in lists) to HTTPS.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "integrations:channel-list"
LOGOUT_REDIRECT_URL = "login"

# The app's API brings its own REST framework and OpenAPI settings: nothing here is required for it.

# --- Skyport integrations -------------------------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotate by prepending a new key).
INTEGRATIONS_ENCRYPTION_KEYS = env.list("INTEGRATIONS_ENCRYPTION_KEYS", default=[])
# Unset in development: this checkout's key, var/encryption_key (made once), which `make serve` uses too, so both
# read the same sessions (config/localkeys.py). With DEBUG off it must be set (`make serve` exports that file).
LOCAL_ENCRYPTION_KEY_FILE = BASE_DIR / "var" / "encryption_key"
if DEBUG and not INTEGRATIONS_ENCRYPTION_KEYS:
    from config.localkeys import development_keys

    INTEGRATIONS_ENCRYPTION_KEYS = development_keys(LOCAL_ENCRYPTION_KEY_FILE, SECRET_KEY)
# The PDS to sign in against when the admin page sets none (then https://bsky.social).
INTEGRATIONS_BLUESKY_SERVICE_URL = env("BLUESKY_SERVICE_URL", default="")
# Accounts whose own PDS is not the Service URL: "refuse" (tell them, the default) or "allow" (sign in there).
INTEGRATIONS_BLUESKY_OTHER_SERVERS = env("BLUESKY_OTHER_SERVERS", default="")
# Allow http:// and loopback/private PDS hosts (local demo and tests only).
INTEGRATIONS_ALLOW_INSECURE_PDS = env.bool("INTEGRATIONS_ALLOW_INSECURE_PDS", default=DEBUG)
INTEGRATIONS_HTTP_TIMEOUT = env.float("INTEGRATIONS_HTTP_TIMEOUT", default=10.0)
# Refresh an access token this many seconds before it ends.
INTEGRATIONS_REFRESH_MARGIN = env.int("INTEGRATIONS_REFRESH_MARGIN", default=300)
# Keep-alive: refresh sessions ending within N days or not refreshed for M days, every INTERVAL seconds.
INTEGRATIONS_KEEPALIVE_WITHIN_DAYS = env.int("INTEGRATIONS_KEEPALIVE_WITHIN_DAYS", default=30)
INTEGRATIONS_KEEPALIVE_STALE_DAYS = env.int("INTEGRATIONS_KEEPALIVE_STALE_DAYS", default=7)
INTEGRATIONS_KEEPALIVE_CONCURRENCY = env.int("INTEGRATIONS_KEEPALIVE_CONCURRENCY", default=4)
INTEGRATIONS_KEEPALIVE_INTERVAL = env.int("INTEGRATIONS_KEEPALIVE_INTERVAL", default=6 * 3600)
# Where did:plc documents are read (accounts' own servers, posts replied to on other servers).
INTEGRATIONS_PLC_URL = env("BLUESKY_PLC_URL", default="https://plc.directory")
# DNS servers for handle lookups (TXT _atproto.<handle>), comma-separated "host" or "host:port"; empty: the system's.
INTEGRATIONS_DNS_NAMESERVERS = env.list("BLUESKY_DNS_SERVERS", default=[])
# A user's Refresh within this many seconds of the last rotation returns the current session.
INTEGRATIONS_REFRESH_COALESCE = env.int("INTEGRATIONS_REFRESH_COALESCE", default=30)
INTEGRATIONS_EVENTS_SHOWN = env.int("INTEGRATIONS_EVENTS_SHOWN", default=50)
# E-mail a channel's owner once when it newly needs reconnection (or its account is deactivated or suspended).
INTEGRATIONS_NOTIFY_OWNERS = env.bool("INTEGRATIONS_NOTIFY_OWNERS", default=True)
# Behind a reverse proxy: the request header holding the client address, e.g. HTTP_X_FORWARDED_FOR.
INTEGRATIONS_TRUSTED_PROXY_HEADER = env("INTEGRATIONS_TRUSTED_PROXY_HEADER", default=None)

# The site's address as users reach it (scheme and host, e.g. https://skyport.example.com): the links in e-mails start
# with it. `manage.py check` warns when it is missing with DEBUG off (integrations.W006).
INTEGRATIONS_SITE_URL = env("SITE_URL", default="")

# E-mail: channel owners are told once when a channel newly needs reconnection (INTEGRATIONS_NOTIFY_OWNERS).
# EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587; by default printed to the console in DEBUG and
# sent to the SMTP server on localhost otherwise (as Django's own default).
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
_smtp_options = {
    "host": _email.get("EMAIL_HOST"),
    "port": _email.get("EMAIL_PORT"),
    "username": _email.get("EMAIL_HOST_USER"),
    "password": _email.get("EMAIL_HOST_PASSWORD"),
    "use_tls": _email.get("EMAIL_USE_TLS"),
    "use_ssl": _email.get("EMAIL_USE_SSL"),
}
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": {k: v for k, v in _smtp_options.items() if v not in (None, "")}
        if _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Skyport <skyport@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Error reports (the DEBUG page, admin e-mails) mask session tokens and app passwords wherever they appear.
DEFAULT_EXCEPTION_REPORTER = "integrations.reporting.SecretsExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "integrations.reporting.SecretsReporterFilter"

# Everything goes to stderr, each line with secrets masked (`integrations.logs.SecretsFormatter`). With DEBUG off,
# a request that ends in an unhandled exception is logged there with its traceback (Django itself only e-mails
# ADMINS then; with DEBUG on it prints it to the console already).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "integrations.logs.SecretsFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "errors": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "level": "ERROR",
            "filters": ["require_debug_false"],
        },
    },
    "loggers": {
        "integrations": {"handlers": ["console"], "level": env("INTEGRATIONS_LOG_LEVEL", default="INFO")},
        "django.request": {"handlers": ["errors"], "level": "ERROR"},
        # httpx logs every request URL at INFO; keep it quiet.
        "httpx": {"handlers": ["console"], "level": "WARNING"},
    },
}
