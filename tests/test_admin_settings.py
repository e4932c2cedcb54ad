"""The admin settings page at /admin/api-integration/bluesky."""

import ipaddress
import re
import threading
import time

import httpx
import pytest
import respx
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from integrations import options
from integrations.bluesky import options as bluesky_options
from integrations.models import IntegrationOption
from integrations.security import outbound

pytestmark = pytest.mark.django_db

URL = "/admin/api-integration/bluesky"


@pytest.fixture
def admin_client_(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def page_version(client) -> str:
    """The settings version the page hands out (what a browser posts back), '' when the page is refused."""
    found = re.search(r'name="version" value="([0-9a-f]*)"', client.get(URL).content.decode())
    return found.group(1) if found else ""


def save(client, service_url="", status="enabled", version=None):
    version = page_version(client) if version is None else version
    return client.post(URL, {"service_url": service_url, "status": status, "_save": "Save", "version": version})


def test_page_shows_default_source(admin_client_, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "")
    response = admin_client_.get(URL)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="effective-url">https://bsky.social<' in text
    assert 'data-source="default"' in text


def test_page_shows_env_source(admin_client_, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://pds.example.com/")
    text = admin_client_.get(URL).content.decode()
    assert 'id="effective-url">https://pds.example.com<' in text
    assert 'data-source="env"' in text


def test_save_overrides_env_normalises_and_logs(admin_client_, admin_user, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://env.example.com")
    response = save(admin_client_, "https://Custom.Example.com/", "enabled")
    assert response.status_code == 302
    assert IntegrationOption.objects.get(key="bluesky_service-url").value == "https://custom.example.com"
    assert IntegrationOption.objects.get(key="bluesky_service-url").updated_by == admin_user
    resolved = bluesky_options.service_url()
    assert (resolved.value, resolved.source) == ("https://custom.example.com", options.Source.DB)

    page = admin_client_.get(URL).content.decode()
    assert "The Bluesky settings were saved." in page
    assert 'data-source="db"' in page
    assert LogEntry.objects.filter(object_repr="bluesky_service-url").exists()


def test_empty_service_url_falls_back_to_env(admin_client_, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://env.example.com")
    save(admin_client_, "https://custom.example.com")
    save(admin_client_, "")
    assert bluesky_options.service_url().value == "https://env.example.com"
    assert bluesky_options.service_url().source == options.Source.ENV


def test_status_disabled_is_saved(admin_client_):
    save(admin_client_, "", "disabled")
    assert bluesky_options.enabled() is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://pds.example.com", "must start with https://"),
        ("https://user:pw@pds.example.com", "Remove the user name and password"),
        ("https://pds.example.com/?x=1", "Remove the query string"),
        ("https://", "needs a host name"),
    ],
)
def test_invalid_url_rerenders_with_error_and_changes_nothing(admin_client_, value, message):
    save(admin_client_, "https://kept.example.com")
    response = save(admin_client_, value, "disabled")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert IntegrationOption.objects.get(key="bluesky_service-url").value == "https://kept.example.com"
    assert bluesky_options.enabled() is True


def test_insecure_url_refused_unless_allowed(admin_client_, settings):
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    response = save(admin_client_, "http://127.0.0.1:2583")
    assert response.status_code == 400
    assert "must use https://" in response.content.decode()
    response = save(admin_client_, "https://10.0.0.5")
    assert "private network" in response.content.decode()
    assert not IntegrationOption.objects.filter(key="bluesky_service-url").exists()


def test_non_staff_user_is_sent_to_login(client, django_user_model):
    user = django_user_model.objects.create_user("mallory", password="x-password-123")
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response.url
    assert save(client, "https://evil.example.com").status_code == 302
    assert not IntegrationOption.objects.exists()


def test_staff_without_the_permission_gets_403(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="x-password-123", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    assert save(client, "https://evil.example.com").status_code == 403
    assert not IntegrationOption.objects.exists()

    staff.user_permissions.add(Permission.objects.get(codename="manage_integrations"))
    client.force_login(staff)
    assert client.get(URL).status_code == 200


def test_admin_index_links_to_the_page(admin_client_):
    index = admin_client_.get("/admin/").content.decode()
    assert "API integration settings" in index
    response = admin_client_.get("/admin/integrations/integrationoption/")
    assert response.status_code == 302 and response.url == URL


def test_invalid_env_value_is_shown_not_crashing(admin_client_, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "ftp://broken")
    response = admin_client_.get(URL)
    assert response.status_code == 200
    assert "BLUESKY_SERVICE_URL is invalid" in response.content.decode()


@pytest.mark.pds
def test_test_connection_shows_what_the_pds_says(admin_client_, pds):
    response = admin_client_.post(URL, {"service_url": pds.url, "status": "enabled", "_test": "Test"})
    text = response.content.decode()
    assert "is a PDS" in text
    assert "did:web:localhost" in text
    assert ".test" in text
    assert "invite codes not required" in text
    assert not IntegrationOption.objects.exists()  # testing does not save


def test_test_connection_reports_unreachable(admin_client_):
    response = admin_client_.post(URL, {"service_url": "http://127.0.0.1:9", "status": "enabled", "_test": "Test"})
    assert "Could not reach the Bluesky server at http://127.0.0.1:9" in response.content.decode()


@pytest.mark.pds
def test_test_connection_reports_not_a_pds(admin_client_, live_server):
    # The Django test server is a web server but not a PDS.
    response = admin_client_.post(URL, {"service_url": live_server.url, "status": "enabled", "_test": "Test"})
    text = response.content.decode()
    assert "Test of" in text and "failed" in text
    assert "did not answer like a Bluesky PDS" in text


def test_stored_url_that_became_unacceptable_is_flagged(admin_client_, settings):
    # Saved while local PDS URLs were allowed (development), then the site runs without that setting.
    IntegrationOption.objects.create(key="bluesky_service-url", value="http://127.0.0.1:2583")
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    text = admin_client_.get(URL).content.decode()
    assert "The stored Service URL is invalid" in text
    assert "must use https://" in text


def test_env_url_with_credentials_is_not_echoed(admin_client_, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://user:hunter2@pds.example.com")
    text = admin_client_.get(URL).content.decode()
    assert "BLUESKY_SERVICE_URL is invalid" in text
    assert "hunter2" not in text


def test_test_connection_refuses_a_name_that_resolves_to_loopback(admin_client_, settings, monkeypatch):
    # Valid syntax (no DNS in form validation), but the call goes through the guard, which resolves the name.
    monkeypatch.setattr(outbound, "resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    response = admin_client_.post(URL, {"service_url": "https://pds.example.com", "status": "enabled", "_test": "Test"})
    text = response.content.decode()
    assert "The server pds.example.com is not at a public network address, so it was not called." in text
    assert not IntegrationOption.objects.exists()


def test_test_connection_reports_a_timeout(admin_client_):
    with respx.mock(assert_all_called=True) as mock:
        mock.get(url__regex=r".*/xrpc/com\.atproto\.server\.describeServer").mock(side_effect=httpx.ReadTimeout)
        response = admin_client_.post(
            URL, {"service_url": "https://slow-pds.example.com", "status": "enabled", "_test": "Test"}
        )
    assert "did not answer in time" in response.content.decode()


def test_a_save_over_someone_elses_newer_save_is_refused(admin_client_, django_user_model):
    other = django_user_model.objects.create_superuser("admin2", "admin2@example.com", "pw-admin2-123")
    other_client = Client()
    other_client.force_login(other)
    stale = page_version(admin_client_)  # admin opens the page...
    assert save(other_client, "https://theirs.example.com").status_code == 302  # ...admin2 saves first
    response = save(admin_client_, "https://mine.example.com", version=stale)
    assert response.status_code == 400
    assert "Someone else saved these settings while you were editing" in response.content.decode()
    assert bluesky_options.service_url().value == "https://theirs.example.com"
    # With the page reloaded, the save goes through.
    assert save(admin_client_, "https://mine.example.com").status_code == 302
    assert bluesky_options.service_url().value == "https://mine.example.com"


@pytest.mark.django_db(transaction=True)
def test_of_two_simultaneous_saves_from_the_same_version_exactly_one_wins(admin_user, django_user_model, monkeypatch):
    """The version check and the write happen under a lock: two admins who opened the same page and press Save at
    the same moment cannot both win (a slow save widens the window in which the old read-then-write let them)."""
    original_save = IntegrationOption.save

    def slow_save(self, *args, **kwargs):
        time.sleep(0.05)
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(IntegrationOption, "save", slow_save)
    other = django_user_model.objects.create_superuser("admin2", "admin2@example.com", "pw-admin2-123")
    clients = []
    for admin in (admin_user, other):
        client = Client()
        client.force_login(admin)
        clients.append(client)

    for attempt in range(5):
        version = page_version(clients[0])
        barrier = threading.Barrier(2)
        outcomes: dict[str, int] = {}

        def press_save(client, url, version=version, barrier=barrier, outcomes=outcomes):
            try:
                barrier.wait()
                outcomes[url] = save(client, url, version=version).status_code
            finally:
                connection.close()

        urls = [f"https://first-{attempt}.example.com", f"https://second-{attempt}.example.com"]
        threads = [threading.Thread(target=press_save, args=(c, u)) for c, u in zip(clients, urls, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes.values()) == [302, 400], outcomes
        winner = next(url for url, status in outcomes.items() if status == 302)
        assert bluesky_options.service_url().value == winner


def test_a_local_service_url_refused_with_debug_off_says_why_and_what_to_set(admin_client_, settings, monkeypatch):
    """`make serve` (DEBUG off) right after `make run` with a local PDS: the page says why the URL is refused."""
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "http://127.0.0.1:2583")
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    text = " ".join(admin_client_.get(URL).content.decode().split())
    assert 'id="effective-url">(invalid)<' in text
    assert "BLUESKY_SERVICE_URL is invalid: The PDS URL must use https://." in text
    assert "accepted only with INTEGRATIONS_ALLOW_INSECURE_PDS=true, which is on by default only with DEBUG" in text


def test_the_service_url_is_resolved_once_per_render(admin_client_, monkeypatch):
    from integrations.bluesky import services
    from integrations.bluesky.xrpc import errors

    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://pds.example.com/")
    real, seen, tested = options.resolve, [], []
    monkeypatch.setattr(options, "resolve", lambda key: seen.append(key) or real(key))

    def unreachable(url):
        tested.append(url)
        raise errors.PdsUnreachable("no")

    monkeypatch.setattr(services, "test_connection", unreachable)
    assert admin_client_.get(URL).status_code == 200
    assert seen.count(bluesky_options.SERVICE_URL.key) == 1
    seen.clear()
    # Test connection without a URL in the form tests the one in force: the same resolution serves both.
    response = admin_client_.post(URL, {"service_url": "", "status": "enabled", "_test": "Test"})
    assert response.status_code == 200
    assert tested == ["https://pds.example.com"]
    assert seen.count(bluesky_options.SERVICE_URL.key) == 1
    assert 'id="effective-url">https://pds.example.com<' in response.content.decode()
