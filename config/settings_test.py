"""Settings for the test suite: the demo settings with test-only keys, a private cache and insecure PDS allowed
(the reference PDS runs on http://localhost), served over plain http like `make run` (the production HTTPS settings
are tested by tests/project/test_deploy.py against gunicorn)."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# A fixed, test-only Fernet key (not a secret: it protects nothing but test data).
os.environ.setdefault("INTEGRATIONS_ENCRYPTION_KEYS", "pGkJ0c7mQ0y3wqg0mJ2a8yq9vY2m4pD7mXgkz0i5Z0E=")
os.environ.setdefault("INTEGRATIONS_ALLOW_INSECURE_PDS", "true")
# No DID document is read from the public PLC directory: the local PDS fixture points this at its own.
os.environ.setdefault("BLUESKY_PLC_URL", "http://127.0.0.1:9")
os.environ.setdefault("CACHE_URL", f"filecache://{tempfile.gettempdir()}/skyport-test-cache-{os.getuid()}")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
# Uploads of a test run go to a private temporary folder, never into the checkout.
MEDIA_ROOT = tempfile.mkdtemp(prefix="skyport-test-media-")
# No link card is fetched unless a test asks for one (tests/bluesky/posts/test_linkcards.py serves its pages on
# loopback): a post text mentioning a public site must not make the suite reach out to it.
INTEGRATIONS_LINK_CARDS = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Plain storage and no collectstatic: WhiteNoise looks files up in the apps per request instead of reading a
# STATIC_ROOT that a fresh checkout does not have.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# The test client and the browser tests' live server speak http://, as `make run` does.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
