"""A second host project, used only by the smoke suite against the installed wheel.

It is what a Django team that installs Skyport writes: a custom user model, ATOMIC_REQUESTS, the app's pages and
API under prefixes of its own, the default (per-process) cache and no REST_FRAMEWORK or SPECTACULAR_SETTINGS at
all. The README's "Use it in your project" section shows exactly these lines.
"""

import os
import tempfile
from pathlib import Path

SECRET_KEY = "hostproject-test-only-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

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
    "hostproject.accounts",
    "integrations",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "integrations.middleware.RequestSizeLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "hostproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
AUTH_USER_MODEL = "accounts.Member"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(tempfile.gettempdir()) / "skyport-hostproject.sqlite3"),
        "ATOMIC_REQUESTS": True,
        "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"skyport-hostproject-test-{os.getpid()}.sqlite3")},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
MEDIA_ROOT = tempfile.mkdtemp(prefix="skyport-hostproject-media-")
LOGIN_URL = "/accounts/login/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Skyport. The local reference PDS runs on http://localhost, so insecure hosts are allowed here only.
INTEGRATIONS_ENCRYPTION_KEYS = ["pGkJ0c7mQ0y3wqg0mJ2a8yq9vY2m4pD7mXgkz0i5Z0E="]
INTEGRATIONS_ALLOW_INSECURE_PDS = True
DEFAULT_EXCEPTION_REPORTER = "integrations.reporting.SecretsExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "integrations.reporting.SecretsReporterFilter"
