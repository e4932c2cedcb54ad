"""The production way, for real: collectstatic, migrate, then gunicorn (gunicorn.conf.py) with DEBUG=false and
WhiteNoise, spoken to over HTTP as a TLS-terminating proxy on the same host would (X-Forwarded-Proto: https).

The server gets its own database: a temp SQLite file, or, when the suite runs on PostgreSQL (TEST_DATABASE_URL),
a scratch PostgreSQL database next to the suite's own, created here and dropped afterwards.
Select these tests with `pytest -m deploy`.
"""

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support.pds.server import _free_port

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
SIDECAR_BUNDLE = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
ADMIN_CSS = "admin/css/base.css"
HTTPS = {"X-Forwarded-Proto": "https"}  # what the proxy in front says; gunicorn trusts it from 127.0.0.1


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    """A database of the server's own: never the suite's (whose PostgreSQL database is test_<name>)."""
    suite_url = os.environ.get("TEST_DATABASE_URL", "")
    if not suite_url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path_factory.mktemp('deploy-db') / 'db.sqlite3'}"
        return
    import psycopg
    from psycopg import sql

    parts = urlsplit(suite_url)
    name = f"skyport_deploy_test_{secrets.token_hex(4)}"
    maintenance = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(("postgres", parts.netloc, f"/{name}", "", ""))
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def production_env(tmp_path_factory, database_url):
    """The environment of a production server, as README's *Deploying* describes it (HTTPS behind a proxy)."""
    tmp = tmp_path_factory.mktemp("deploy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DJANGO_", "SECURE_", "GUNICORN_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "INTEGRATIONS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1,skyport.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://skyport.example.com",
            "DATABASE_URL": database_url,
            "CACHE_URL": f"filecache://{tmp / 'cache'}",
            "STATIC_ROOT": str(tmp / "static"),
            "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
            "BLUESKY_SERVICE_URL": "https://bsky.social",
            "SITE_URL": "https://skyport.example.com",
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def server(production_env, tmp_path_factory):
    """collectstatic + migrate, then gunicorn on a free loopback port; yields its base URL, stops it at the end."""
    for step in (("collectstatic", "--no-input", "--verbosity", "0"), ("migrate", "--no-input")):
        result = manage(production_env, *step)
        assert result.returncode == 0, f"manage.py {step[0]} failed:\n{result.stdout}\n{result.stderr}"

    port = _free_port()
    log = (tmp_path_factory.mktemp("gunicorn") / "gunicorn.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
        cwd=ROOT,
        env={**production_env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read()[-4000:]}")
            try:
                httpx.get(f"{base}/accounts/login/", headers=HTTPS, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("gunicorn did not answer within 60 s")
                time.sleep(0.2)
        with httpx.Client(base_url=base, headers=HTTPS, timeout=10) as client:
            client.static_root = Path(production_env["STATIC_ROOT"])
            client.log = log
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def hashed_name(static_root: Path, name: str) -> str:
    """The name collectstatic gave the file (ManifestStaticFilesStorage: name.<hash>.ext)."""
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    return manifest["paths"][name]


def test_plain_http_is_redirected_to_https(server):
    netloc = server.base_url.netloc.decode()
    response = httpx.get(f"http://{netloc}/accounts/login/", timeout=10)  # no proxy header: not HTTPS
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{netloc}/accounts/login/"


def test_login_page_is_served_with_the_production_security_headers(server):
    response = server.get("/accounts/login/")
    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in response.text
    assert response.headers["strict-transport-security"] == "max-age=3600"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    csrf_cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("csrftoken="))
    assert "Secure" in csrf_cookie


@pytest.mark.parametrize("name", [ADMIN_CSS, SIDECAR_BUNDLE])
def test_static_files_are_served_by_whitenoise_cached_for_ever_under_hashed_names(server, name):
    hashed = hashed_name(server.static_root, name)
    assert hashed != name

    response = server.get(f"/static/{hashed}", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.content == (server.static_root / hashed).read_bytes()
    assert response.headers["content-encoding"] == "gzip"  # the .gz that collectstatic wrote beside it
    cache_control = response.headers["cache-control"]
    assert "max-age=315360000" in cache_control and "immutable" in cache_control

    # The original name still answers, but only with a short cache lifetime: it changes with every release.
    plain = server.get(f"/static/{name}")
    assert plain.status_code == 200
    assert "immutable" not in plain.headers["cache-control"]


def test_api_docs_reference_only_local_static_files(server):
    response = server.get("/api/docs/")
    assert response.status_code == 200
    # Assets (scripts, stylesheets, icons); the page's links back to the app are same-site paths.
    links = re.findall(r"""<a\s[^>]*href\s*=\s*["']([^"']+)["']""", response.text)
    assert links and all(link.startswith("/") and not link.startswith("//") for link in links), links
    references = re.findall(r"""<(?:script|link|img)\s[^>]*(?:src|href)\s*=\s*["']([^"']+)["']""", response.text)
    references += re.findall(r"""["'](https?://[^"']+)["']""", response.text)
    assert any(SIDECAR_BUNDLE.rsplit(".", 1)[0] in ref for ref in references), references
    for ref in references:
        assert ref.startswith("/static/"), f"/api/docs/ refers to {ref!r}, not a local static file"
        assert server.get(ref).status_code == 200, ref
    assert server.get("/api/schema/").status_code == 200


def test_an_unknown_page_is_a_plain_404_without_the_debug_page(server):
    response = server.get("/no-such-page/")
    assert response.status_code == 404
    assert "DEBUG = True" not in response.text
    assert "Traceback" not in response.text
    assert "URLconf" not in response.text


def test_the_access_log_goes_to_stdout(server):
    server.get("/accounts/login/")
    time.sleep(0.5)
    server.log.seek(0)
    assert '"GET /accounts/login/ HTTP/1.1" 200' in server.log.read()


def test_check_deploy_warns_only_about_what_the_readme_explains(production_env):
    result = manage(production_env, "check", "--deploy", "--fail-level", "ERROR")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = set(re.findall(r"\(([\w.]+\.[WE]\d{3})\)", output))
    deploying = readme_section("Deploying")
    unexplained = {w for w in warnings if w not in deploying}
    assert not unexplained, f"check --deploy warnings the README's Deploying section does not explain:\n{output}"


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)
