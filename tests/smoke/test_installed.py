"""The installed wheel inside a host project that is not ours: a custom user model, ATOMIC_REQUESTS, other URL
prefixes, the default cache and no REST_FRAMEWORK settings, against the real local PDS."""

import importlib.util
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import integrations
from integrations.bluesky import options as bluesky_options
from integrations.models import Channel

pytestmark = pytest.mark.django_db

API = "/bsky-api/v1/channels/"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


@pytest.fixture
def api(member):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")
    return client


def test_the_app_is_the_installed_wheel_and_nothing_of_the_demo_project_came_along():
    location = Path(integrations.__file__).resolve()
    assert "site-packages" in location.parts
    assert (location.parent / "templates" / "integrations" / "channel_list.html").is_file()
    assert (location.parent / "static" / "integrations" / "skyport.css").is_file()
    for module in ("config", "bench", "tests"):
        assert importlib.util.find_spec(module) is None, module


def test_migrations_are_complete_for_a_custom_user_model():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_admin_settings_page_saves_the_service_url(admin_client, pds):
    page = admin_client.get("/admin/api-integration/bluesky")
    assert page.status_code == 200
    version = re.search(r'name="version" value="([0-9a-f]*)"', page.content.decode()).group(1)
    response = admin_client.post(
        "/admin/api-integration/bluesky",
        {"service_url": pds.url, "status": "enabled", "_save": "Save", "version": version},
    )
    assert response.status_code == 302
    assert bluesky_options.service_url().value == pds.url
    tested = admin_client.post(
        "/admin/api-integration/bluesky", {"service_url": "", "status": "enabled", "_test": "Test", "version": ""}
    )
    assert pds.url in tested.content.decode() and "did:" in tested.content.decode()


def test_connect_and_refresh_on_the_web_pages_under_another_prefix(use_pds, member, account):
    web = Client()
    web.force_login(member)
    response = web.post(
        "/social/channels/connect/bluesky", {"identifier": account.handle, "app_password": account.app_passwords[0]}
    )
    assert response.status_code == 302 and response["Location"] == "/social/channels"
    channel = Channel.objects.get(user=member)
    assert account.handle in web.get("/social/channels").content.decode()
    assert web.post(f"/social/channels/{channel.pk}/refresh").status_code == 302
    assert use_pds.refresh_count(account.did) == 1
    wrong = web.post("/social/channels/connect/bluesky", {"identifier": account.handle, "app_password": "nope-nope"})
    assert wrong.status_code == 400
    assert "did not accept that handle and app password" in wrong.content.decode()


def test_the_api_answers_in_its_own_error_shape_without_any_rest_framework_settings(use_pds, api, account):
    assert api.get(API).json() == {"channels": [], "cursor": None}
    assert_error(APIClient().get(API), 401, "not_authenticated")
    assert_error(api.get("/bsky-api/v1/nothing-here/"), 404, "not_found")
    assert_error(api.post(API + "bluesky/", {"identifier": "not a handle!", "app_password": "x"}), 400, "invalid")
    wrong = {"identifier": account.handle, "app_password": "wrong-wrong-wrong-wrong"}
    assert_error(api.post(API + "bluesky/", wrong, format="json"), 400, "invalid_credentials")
    assert not Channel.objects.exists()  # ATOMIC_REQUESTS: a refused connect leaves nothing behind

    right = {"identifier": account.handle, "app_password": account.app_passwords[0]}
    created = api.post(API + "bluesky/", right, format="json")
    assert created.status_code == 201, created.content
    channel = created.json()
    assert channel["did"] == account.did and "access_jwt" not in channel
    assert [c["id"] for c in api.get(API).json()["channels"]] == [channel["id"]]
    refreshed = api.post(f"{API}{channel['id']}/refresh/")
    assert refreshed.status_code == 200 and refreshed.json()["health"]["state"] == "active"
    assert_error(api.post(f"{API}{channel['id'] + 1000}/refresh/"), 404, "not_found")


def test_the_schema_describes_the_api_where_the_project_mounted_it():
    schema = Client().get("/bsky-api/schema/", {"format": "json"}).json()
    assert schema["info"]["title"] == "Skyport API"
    assert "/bsky-api/v1/channels/bluesky/" in schema["paths"]
