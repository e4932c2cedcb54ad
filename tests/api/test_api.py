"""The REST API (`/api/v1/`), its OpenAPI schema and docs, and the channel admin, against the real local PDS."""

import json
import re
from typing import Any

import httpx
import pytest
import respx
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations.bluesky.xrpc.client import PdsClient
from integrations.models import Channel, ChannelEvent, IntegrationOption

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

LIST = "/api/v1/channels/"
CONNECT = "/api/v1/channels/bluesky/"
SCHEMA = "/api/schema/"
DOCS = "/api/docs/"
WEB_CONNECT = reverse("integrations:connect-bluesky")
ADMIN_CHANNELS = "/admin/integrations/channel/"

JWT_RE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def detail_url(pk: int) -> str:
    return f"/api/v1/channels/{pk}/"


def refresh_url(pk: int) -> str:
    return f"/api/v1/channels/{pk}/refresh/"


def events_url(pk: int) -> str:
    return f"/api/v1/channels/{pk}/events/"


# --- helpers -------------------------------------------------------------------------------------------------------
@pytest.fixture
def anonymous_api():
    """An API client that is not signed in (conftest's `api` is signed in with `user`'s token)."""
    return APIClient()


@pytest.fixture
def token(user):
    return Token.objects.create(user=user)


@pytest.fixture
def alice_api(token):
    """Alice's API client, authenticated with her DRF token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def bob_api(other_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    return client


def connect(client: APIClient, identifier: str, password: str, **extra: Any):
    return client.post(CONNECT, {"identifier": identifier, "app_password": password}, format="json", **extra)


def keys(value: Any) -> list[str]:
    """Every mapping key anywhere in a JSON value."""
    if isinstance(value, dict):
        return [*value.keys(), *(k for v in value.values() for k in keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in keys(v)]
    return []


def assert_no_secrets(response, *secrets: str) -> None:
    """No token-ish key, no JWT-shaped string and none of the given secrets anywhere in the response body."""
    body = response.content.decode()
    if body:
        for key in keys(json.loads(body)):
            assert "jwt" not in key.lower() and "token" not in key.lower(), key
    assert not JWT_RE.search(body), "a JWT-shaped string is in the response"
    for secret in secrets:
        assert secret and secret not in body


def stored_secrets(channel: Channel) -> list[str]:
    channel.refresh_from_db()
    return [s for s in (channel.access_jwt, channel.refresh_jwt) if s]


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@pytest.fixture
def channel(use_pds, alice_api, account, user) -> Channel:
    """Alice's channel, connected through the API."""
    response = connect(alice_api, account.handle, account.app_passwords[0])
    assert response.status_code == 201, response.content
    return Channel.objects.get(user=user)


@pytest.fixture
def create_session_calls(monkeypatch):
    """Counts createSession calls that leave for a PDS (the real call still happens)."""
    calls: list[str] = []
    original = PdsClient.create_session

    def spy(self, identifier, password):
        calls.append(identifier)
        return original(self, identifier, password)

    monkeypatch.setattr(PdsClient, "create_session", spy)
    return calls


# --- authentication ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", LIST),
        ("post", CONNECT),
        ("get", detail_url(1)),
        ("delete", detail_url(1)),
        ("post", refresh_url(1)),
        ("get", events_url(1)),
    ],
)
def test_unauthenticated_requests_are_refused_with_the_error_shape(anonymous_api, method, path):
    response = getattr(anonymous_api, method)(path, format="json")
    assert response.status_code == 401  # not 403: a token client is told how to authenticate
    assert response["WWW-Authenticate"] == "Token"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "not_authenticated"
    assert body["error"]["message"]


def test_a_wrong_token_is_refused(anonymous_api, user):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = anonymous_api.get(LIST)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "authentication_failed"


def test_token_auth_works(alice_api):
    response = alice_api.get(LIST)
    assert response.status_code == 200
    assert response.json() == {"channels": [], "cursor": None}


def test_session_auth_works(anonymous_api, user):
    anonymous_api.force_login(user)
    response = anonymous_api.get(LIST)
    assert response.status_code == 200
    assert response.json() == {"channels": [], "cursor": None}


def test_session_auth_can_connect(use_pds, anonymous_api, user, account):
    anonymous_api.force_login(user)
    response = connect(anonymous_api, account.handle, account.app_passwords[0])
    assert response.status_code == 201
    assert Channel.objects.get(user=user).did == account.did


def test_session_auth_needs_the_csrf_token(use_pds, user, account, create_session_calls):
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(user)
    response = connect(api, account.handle, account.app_passwords[0])
    assert_error(response, 403, "permission_denied")
    assert "CSRF" in response.json()["error"]["message"]
    assert create_session_calls == []
    assert not Channel.objects.exists()


# --- connect -------------------------------------------------------------------------------------------------------
def test_connect_returns_the_channel_and_no_token(use_pds, alice_api, account, user):
    password = account.app_passwords[0]
    response = connect(alice_api, f" @{account.handle.upper()} ", password)
    assert response.status_code == 201, response.content

    channel = Channel.objects.get(user=user)
    assert channel.access_jwt and channel.refresh_jwt
    body = response.json()
    assert body["id"] == channel.pk
    assert body["provider"] == "bluesky"
    assert body["did"] == account.did
    assert body["handle"] == account.handle
    assert body["service_url"] == use_pds.url
    assert body["status"] == "active"
    assert body["health"]["state"] == "active"
    assert body["expired"] is False
    assert body["needs_reconnection"] is False
    assert body["access_expires_at"] and body["refresh_expires_at"] and body["connected_at"]
    assert "app_password" not in body
    assert_no_secrets(response, channel.access_jwt, channel.refresh_jwt, password)
    assert list(channel.events.values_list("kind", flat=True)) == ["connected"]


def test_list_retrieve_and_events_show_no_token(channel, alice_api, account):
    secrets = [*stored_secrets(channel), account.app_passwords[0]]

    listed = alice_api.get(LIST)
    assert listed.status_code == 200
    assert [row["did"] for row in listed.json()["channels"]] == [account.did]
    assert_no_secrets(listed, *secrets)

    one = alice_api.get(detail_url(channel.pk))
    assert one.status_code == 200
    assert one.json()["handle"] == account.handle
    assert one.json()["health"]["state"] == "active"
    assert_no_secrets(one, *secrets)

    events = alice_api.get(events_url(channel.pk))
    assert events.status_code == 200
    assert [event["kind"] for event in events.json()["events"]] == ["connected"]
    assert_no_secrets(events, *secrets)


def test_wrong_password(use_pds, alice_api, account, user):
    response = connect(alice_api, account.handle, "wrong-wrong-wrong-wrong")
    error = assert_error(response, 400, "invalid_credentials")
    assert use_pds.url in error["message"]  # not bsky.social: says where the account was looked up
    assert "wrong-wrong-wrong-wrong" not in response.content.decode()
    assert not Channel.objects.exists()


def test_main_password_is_refused_and_signed_out(use_pds, alice_api, account, user):
    before = use_pds.session_count(account.did)
    response = connect(alice_api, account.handle, account.password)
    error = assert_error(response, 400, "main_password_refused")
    assert "https://bsky.app/settings/app-passwords" in error["message"]
    assert account.password not in response.content.decode()
    assert not Channel.objects.exists()
    assert use_pds.session_count(account.did) == before


def test_disabled_integration(use_pds, alice_api, account, user, create_session_calls):
    IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    response = connect(alice_api, account.handle, account.app_passwords[0])
    assert_error(response, 403, "integration_disabled")
    assert create_session_calls == []
    assert not Channel.objects.exists()


@pytest.mark.parametrize("identifier", ["not a handle", "", "alice", "bad@", "did:nope"])
def test_bad_identifier(use_pds, alice_api, user, identifier, create_session_calls):
    response = connect(alice_api, identifier, "abcd-efgh-ijkl-mnop")
    error = assert_error(response, 400, "invalid")
    assert set(error["fields"]) == {"identifier"}
    assert error["fields"]["identifier"]
    assert error["message"] == error["fields"]["identifier"][0].replace("This field", "identifier")
    assert create_session_calls == []
    assert not Channel.objects.exists()


def test_missing_app_password(use_pds, alice_api, account, user):
    response = alice_api.post(CONNECT, {"identifier": account.handle}, format="json")
    error = assert_error(response, 400, "invalid")
    assert "app_password" in error["fields"]
    assert not Channel.objects.exists()


def test_unreachable_pds(alice_api, monkeypatch, account, user):
    monkeypatch.setattr(
        django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "http://127.0.0.1:9"
    )  # discard port: connection refused
    response = connect(alice_api, account.handle, account.app_passwords[0])
    error = assert_error(response, 503, "pds_unreachable")
    assert "http://127.0.0.1:9" in error["message"]
    assert not Channel.objects.exists()


def test_rate_limited_by_the_pds(use_pds, alice_api, account, user):
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(f"{use_pds.url}/xrpc/com.atproto.server.createSession").mock(
            return_value=httpx.Response(
                429,
                headers={"Retry-After": "60"},
                json={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            )
        )
        mock.route().pass_through()
        response = connect(alice_api, account.handle, account.app_passwords[0])
    assert route.call_count == 1
    error = assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "60"
    assert error["retry_after"] == 60
    assert not Channel.objects.exists()


# --- connect throttle (shared by the API and the web form) ---------------------------------------------------------
# Fixed windows: the window here is an hour rather than 5 minutes so a run never straddles a window boundary.
WINDOW = 3600


def test_connect_throttle_per_user_stops_before_the_pds(
    use_pds, alice_api, account, user, settings, create_session_calls
):
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (3, WINDOW), "ip": (100, WINDOW)}
    for _ in range(3):
        assert_error(connect(alice_api, account.handle, "wrong-wrong-wrong-wrong"), 400, "invalid_credentials")
    assert len(create_session_calls) == 3
    sessions = use_pds.session_count(account.did)

    # Even the right app password is not tried: the PDS never sees the 4th attempt.
    response = connect(alice_api, account.handle, account.app_passwords[0])
    error = assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= WINDOW
    assert error["retry_after"] == int(response["Retry-After"])
    assert "Too many connection attempts" in error["message"]
    assert len(create_session_calls) == 3
    assert use_pds.session_count(account.did) == sessions
    assert not Channel.objects.exists()


def test_connect_throttle_is_shared_by_the_api_and_the_web_form(
    use_pds, alice_api, account, user, settings, create_session_calls
):
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (3, WINDOW), "ip": (100, WINDOW)}
    web = Client()
    web.force_login(user)
    for _ in range(2):
        assert_error(connect(alice_api, account.handle, "wrong-wrong-wrong-wrong"), 400, "invalid_credentials")
    response = web.post(WEB_CONNECT, {"identifier": account.handle, "app_password": "wrong-wrong-wrong-wrong"})
    assert response.status_code == 400
    assert "did not accept that handle and app password" in response.content.decode()
    assert len(create_session_calls) == 3

    # Both doors are now closed for Alice.
    response = web.post(WEB_CONNECT, {"identifier": account.handle, "app_password": account.app_passwords[0]})
    assert response.status_code == 400
    assert "Too many connection attempts" in response.content.decode()
    assert_error(connect(alice_api, account.handle, account.app_passwords[0]), 429, "throttled")
    assert len(create_session_calls) == 3
    assert not Channel.objects.exists()


def test_connect_throttle_per_ip_is_shared_by_users(
    use_pds, alice_api, bob_api, account, user, other_user, settings, create_session_calls
):
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (100, WINDOW), "ip": (3, WINDOW)}
    office = {"REMOTE_ADDR": "198.51.100.7"}
    for _ in range(2):
        assert_error(connect(alice_api, account.handle, "wrong-1", **office), 400, "invalid_credentials")
    assert_error(connect(bob_api, account.handle, "wrong-2", **office), 400, "invalid_credentials")

    # Bob has made one attempt only, but his address has used up its three.
    response = connect(bob_api, account.handle, account.app_passwords[0], **office)
    assert_error(response, 429, "throttled")
    assert response["Retry-After"]
    assert len(create_session_calls) == 3

    # From another address Bob is not throttled.
    elsewhere = {"REMOTE_ADDR": "203.0.113.9"}
    assert_error(connect(bob_api, account.handle, "wrong-3", **elsewhere), 400, "invalid_credentials")
    assert len(create_session_calls) == 4
    assert not Channel.objects.exists()


# --- ownership -----------------------------------------------------------------------------------------------------
def test_list_shows_only_own_channels(channel, alice_api, bob_api, other_user, account):
    Channel.objects.create(
        user=other_user, did="did:plc:bobbobbobbobbobbobbobbob", handle="bob.test", service_url="https://bsky.social"
    )
    assert [row["did"] for row in alice_api.get(LIST).json()["channels"]] == [account.did]
    assert [row["did"] for row in bob_api.get(LIST).json()["channels"]] == ["did:plc:bobbobbobbobbobbobbobbob"]


def test_another_users_channel_is_a_404(channel, bob_api, use_pds, account):
    refresh_jwt = channel.refresh_jwt
    for method, path in [
        ("get", detail_url(channel.pk)),
        ("post", refresh_url(channel.pk)),
        ("delete", detail_url(channel.pk)),
        ("get", events_url(channel.pk)),
    ]:
        response = getattr(bob_api, method)(path)
        assert_error(response, 404, "not_found")
        assert account.handle not in response.content.decode()
    untouched = Channel.objects.get(pk=channel.pk)
    assert untouched.status == Channel.Status.ACTIVE
    assert untouched.refresh_jwt == refresh_jwt
    assert use_pds.refresh_count(account.did) == 0


def test_unknown_channel_is_a_404(alice_api):
    assert_error(alice_api.get(detail_url(999999)), 404, "not_found")


# --- refresh, disconnect, dead sessions ----------------------------------------------------------------------------
def test_refresh_rotates_the_tokens(channel, alice_api, use_pds, account):
    old = stored_secrets(channel)
    old_refresh = channel.refresh_jwt

    response = alice_api.post(refresh_url(channel.pk))
    assert response.status_code == 200, response.content
    channel.refresh_from_db()
    assert channel.refresh_jwt != old_refresh
    assert use_pds.refresh_count(account.did) == 1
    body = response.json()
    assert body["health"]["state"] == "active"
    assert body["refreshed_at"]
    assert_no_secrets(response, *old, *stored_secrets(channel), account.app_passwords[0])

    events = alice_api.get(events_url(channel.pk))
    assert "refreshed" in [event["kind"] for event in events.json()["events"]]
    assert_no_secrets(events, *old, *stored_secrets(channel))


def test_delete_disconnects_and_revokes_the_session(channel, alice_api, use_pds):
    old_refresh = channel.refresh_jwt

    response = alice_api.delete(detail_url(channel.pk))
    assert response.status_code == 204
    assert response.content == b""

    gone = Channel.objects.get(pk=channel.pk)
    assert gone.status == Channel.Status.DISCONNECTED
    assert gone.access_jwt == "" and gone.refresh_jwt == ""
    assert use_pds.refresh_with(old_refresh).json()["error"] == "ExpiredToken"

    shown = alice_api.get(detail_url(channel.pk))
    assert shown.status_code == 200
    assert shown.json()["health"]["state"] == "disconnected"
    assert shown.json()["expired"] is True
    assert shown.json()["health"]["action"] == "reconnect"

    events = alice_api.get(events_url(channel.pk))
    kinds = [event["kind"] for event in events.json()["events"]]
    assert kinds[0] == "disconnected"
    assert "connected" in kinds
    assert_no_secrets(events, old_refresh)

    # Refreshing a disconnected channel is a conflict, not a crash.
    assert_error(alice_api.post(refresh_url(channel.pk)), 409, "no_session")


def test_refresh_of_a_revoked_session_asks_for_reconnection(channel, alice_api, use_pds):
    assert use_pds.delete_session(channel.refresh_jwt).status_code == 200

    response = alice_api.post(refresh_url(channel.pk))
    error = assert_error(response, 409, "session_expired")
    assert "https://bsky.app/settings/app-passwords" in error["message"]

    shown = alice_api.get(detail_url(channel.pk)).json()
    assert shown["needs_reconnection"] is True
    assert shown["expired"] is True
    assert shown["health"]["state"] == "needs_reconnection"
    stored = Channel.objects.get(pk=channel.pk)
    assert stored.refresh_jwt == "" and stored.access_jwt == ""
    kinds = set(ChannelEvent.objects.filter(channel=stored).values_list("kind", flat=True))
    assert {"refresh_failed", "needs_reconnection"} <= kinds


# --- schema and docs -----------------------------------------------------------------------------------------------
def property_names(value: Any) -> list[str]:
    """Every property name of every object schema in an OpenAPI document."""
    names: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("properties"), dict):
            names.extend(value["properties"])
        for item in value.values():
            names.extend(property_names(item))
    elif isinstance(value, list):
        for item in value:
            names.extend(property_names(item))
    return names


def test_schema_is_openapi_3(anonymous_api):
    response = anonymous_api.get(SCHEMA)
    assert response.status_code == 200
    text = response.content.decode()
    assert re.search(r"^openapi: ['\"]?3\.", text, re.MULTILINE)
    assert "/api/v1/channels/bluesky/:" in text


def test_schema_documents_connect_and_no_token_property(anonymous_api):
    response = anonymous_api.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")

    operation = document["paths"]["/api/v1/channels/bluesky/"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert request_schema["properties"]["app_password"]["writeOnly"] is True
    assert set(request_schema["required"]) == {"identifier", "app_password"}
    assert "201" in operation["responses"]
    for path in (
        "/api/v1/channels/",
        "/api/v1/channels/{id}/",
        "/api/v1/channels/{id}/refresh/",
        "/api/v1/channels/{id}/events/",
    ):
        assert path in document["paths"]

    names = property_names(document)
    assert "app_password" in names
    assert not [name for name in names if "jwt" in name.lower() or "token" in name.lower()]
    assert "access_jwt" not in response.content.decode()
    assert "refresh_jwt" not in response.content.decode()


def test_docs_use_local_static_files_only(anonymous_api):
    response = anonymous_api.get(DOCS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    lowered = html.lower()
    for cdn in ("cdn", "unpkg", "jsdelivr"):
        assert cdn not in lowered
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html), "an external asset"
    assets = re.findall(r"""(?:src|href)=["']/static/([^"'?]+)""", html)
    assert assets, "the page loads its assets from /static/"
    for asset in assets:
        assert finders.find(asset), f"missing static file {asset}"
    assert "/api/schema/" in html


# --- admin ---------------------------------------------------------------------------------------------------------
def test_admin_lists_the_channel_with_health_and_no_tokens(channel, admin_client, account):
    secrets = stored_secrets(channel)
    changelist = admin_client.get(ADMIN_CHANNELS)
    assert changelist.status_code == 200
    html = changelist.content.decode()
    assert account.handle in html
    assert account.did in html
    assert "Active" in html
    for secret in secrets:
        assert secret not in html
    assert not JWT_RE.search(html)

    change = admin_client.get(f"{ADMIN_CHANNELS}{channel.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert account.handle in html
    assert "Channel events" in html
    assert "Connected" in html
    for secret in secrets:
        assert secret not in html
    assert not JWT_RE.search(html)


def test_admin_change_page_shows_events(channel, admin_client, alice_api):
    alice_api.post(refresh_url(channel.pk))
    html = admin_client.get(f"{ADMIN_CHANNELS}{channel.pk}/change/").content.decode()
    assert "Session refreshed" in html
    assert not JWT_RE.search(html)


def test_admin_refresh_action_rotates_the_tokens(channel, admin_client, use_pds, account):
    old_refresh = channel.refresh_jwt
    response = admin_client.post(
        ADMIN_CHANNELS, {"action": "refresh_selected", "_selected_action": [channel.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Refreshed 1 channel." in response.content.decode()
    channel.refresh_from_db()
    assert channel.refresh_jwt != old_refresh
    assert use_pds.refresh_count(account.did) == 1
    assert not JWT_RE.search(response.content.decode())


# --- query counts --------------------------------------------------------------------------------------------------
def make_channels(user, count: int) -> None:
    Channel.objects.bulk_create(
        Channel(user=user, did=f"did:plc:fake{n:020d}", handle=f"fake{n}.test", service_url="https://pds.example.com")
        for n in range(Channel.objects.filter(user=user).count(), count)
    )


def count_list_queries(client: APIClient) -> tuple[int, list[dict[str, Any]]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST, {"limit": 100})
    assert response.status_code == 200
    return len(queries), response.json()["channels"]


def test_list_uses_a_constant_number_of_queries(alice_api, user):
    make_channels(user, 5)
    few, rows = count_list_queries(alice_api)
    assert len(rows) == 5
    make_channels(user, 30)
    many, rows = count_list_queries(alice_api)
    assert len(rows) == 30
    assert many == few
    assert few <= 3  # the token lookup and the channels (no per-row query)
    assert {row["health"]["state"] for row in rows} == {"active"}


@pytest.mark.parametrize("pk", ["99999999999999999999999999", "0", "000"])
def test_odd_channel_ids_are_a_404_not_a_crash(alice_api, pk):
    for method, path in [
        ("get", f"/api/v1/channels/{pk}/"),
        ("post", f"/api/v1/channels/{pk}/refresh/"),
        ("delete", f"/api/v1/channels/{pk}/"),
        ("get", f"/api/v1/channels/{pk}/events/"),
    ]:
        assert_error(getattr(alice_api, method)(path), 404, "not_found")


def test_several_users_cannot_together_use_up_one_accounts_sign_in_budget(
    use_pds, account, settings, django_user_model
):
    """The PDS allows 30 createSession per 5 minutes per account: ours stops attempts on one account earlier,
    whoever makes them."""
    settings.INTEGRATIONS_CONNECT_RATES = {"account": (4, 3600)}
    before = use_pds.session_count(account.did)
    statuses = []
    for index in range(6):
        client = APIClient(REMOTE_ADDR=f"10.0.0.{index}")
        client.force_authenticate(django_user_model.objects.create_user(f"tenant{index}", password="pw-123456789"))
        answer = client.post("/api/v1/channels/bluesky/", {"identifier": account.handle, "app_password": "wrong-pw-1"})
        statuses.append((answer.status_code, answer.json()["error"]["code"]))
    assert statuses[:4] == [(400, "invalid_credentials")] * 4
    assert statuses[4:] == [(429, "throttled")] * 2
    assert use_pds.session_count(account.did) == before


# --- malformed requests --------------------------------------------------------------------------------------------
def test_a_deeply_nested_json_body_is_a_400_in_the_error_shape(alice_api, user):
    body = "[" * 100_000 + "]" * 100_000
    response = alice_api.post(CONNECT, body, content_type="application/json")
    error = assert_error(response, 400, "parse_error")
    assert "nested" in error["message"]
    assert not Channel.objects.exists()


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_upload_limit_is_a_413_in_the_error_shape(alice_api, user, content_type, create_session_calls):
    padding = "x" * (10 * 1024 * 1024)
    if content_type == "application/json":
        body = json.dumps({"identifier": "alice.test", "app_password": "abcd-efgh-ijkl-mnop", "padding": padding})
    else:
        body = f"identifier=alice.test&app_password=abcd-efgh-ijkl-mnop&padding={padding}"
    response = alice_api.post(CONNECT, body, content_type=content_type)
    assert_error(response, 413, "request_too_large")
    assert create_session_calls == []
    assert not Channel.objects.exists()


# --- limits that hold ----------------------------------------------------------------------------------------------
def test_the_account_limit_counts_every_spelling_of_one_account(
    use_pds, alice_api, account, settings, create_session_calls
):
    """Case variants of a handle or an email, and the DID for the handle, are one account: they share its budget."""
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (100, WINDOW), "ip": (100, WINDOW), "account": (5, WINDOW)}
    handle, email = account.handle, account.email
    for spelling in (handle, handle.upper(), account.did, "@" + handle.title(), handle.capitalize()):
        assert_error(connect(alice_api, spelling, "wrong-wrong-wrong-1"), 400, "invalid_credentials")
    assert_error(connect(alice_api, handle.upper(), account.app_passwords[0]), 429, "throttled")
    assert_error(connect(alice_api, account.did, account.app_passwords[0]), 429, "throttled")

    for spelling in (email, email.upper(), email.capitalize(), email.swapcase(), email.title()):
        assert_error(connect(alice_api, spelling, "wrong-wrong-wrong-2"), 400, "invalid_credentials")
    assert_error(connect(alice_api, email.lower(), account.app_passwords[0]), 429, "throttled")
    assert len(create_session_calls) == 10  # five per account, whatever the spelling
    assert not Channel.objects.exists()


def test_refresh_clicks_moments_apart_rotate_the_session_once(channel, alice_api, use_pds, account):
    """A script hammering Refresh gets the current state back; the PDS sees one rotation."""
    for _ in range(15):
        response = alice_api.post(refresh_url(channel.pk))
        assert response.status_code == 200
        assert response.json()["health"]["state"] == "active"
    assert use_pds.refresh_count(account.did) == 1


# --- the web pages and the API behave alike ------------------------------------------------------------------------
def test_the_api_removes_a_disconnected_channel_as_the_web_page_does(channel, alice_api, use_pds):
    remove = f"/api/v1/channels/{channel.pk}/remove/"
    assert_error(alice_api.post(remove), 409, "channel_connected")
    assert Channel.objects.filter(pk=channel.pk).exists()
    assert alice_api.delete(detail_url(channel.pk)).status_code == 204  # disconnect
    assert alice_api.post(remove).status_code == 204
    assert not Channel.objects.filter(pk=channel.pk).exists()
    assert not ChannelEvent.objects.filter(channel_id=channel.pk).exists()
    assert_error(alice_api.post(remove), 404, "not_found")


def test_the_event_list_is_as_long_on_the_page_as_in_the_api(channel, alice_api, user, settings):
    settings.INTEGRATIONS_EVENTS_SHOWN = 5
    for index in range(8):
        channel.record_event(ChannelEvent.Kind.PROFILE_UPDATED, detail=f"update {index}")
    api_events = alice_api.get(events_url(channel.pk)).json()["events"]
    web = Client()
    web.force_login(user)
    page = web.get(reverse("integrations:channel-detail", args=[channel.pk])).content.decode()
    assert len(api_events) == 5
    assert [event["detail"] for event in api_events] == [f"update {index}" for index in range(7, 2, -1)]
    assert page.count("update ") == 5 and "update 7" in page and "update 2" not in page


@pytest.mark.parametrize(
    ("identifier", "password", "field"),
    [("not a handle!", "abcd-efgh-ijkl-mnop", "identifier"), ("alice.example.com", "   ", "app_password")],
)
def test_connect_input_is_checked_once_with_the_same_words_on_the_page_and_in_the_api(
    alice_api, user, identifier, password, field, create_session_calls
):
    error = assert_error(connect(alice_api, identifier, password), 400, "invalid")
    web = Client()
    web.force_login(user)
    page = web.post(WEB_CONNECT, {"identifier": identifier, "app_password": password}).content.decode()
    [message] = error["fields"][field]
    assert message.replace("'", "&#x27;") in page
    assert create_session_calls == []


# --- one contract for every path and every repeat (issue 23) ------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/posts/1%0A/",  # the test client drops a raw newline, as urllib does; the server gets this one
        "/api/v1/channels/1%0A/events/",
        "/api/v1/nope",
        "/api/nope",
        "/api/",
        "/api/schema/nope",
        "/api/%0A",
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_every_path_under_the_api_that_is_no_route_is_a_json_404(alice_api, path, method):
    response = getattr(alice_api, method)(path)
    assert response["Content-Type"] == "application/json"
    assert_error(response, 404, "not_found")


def test_disconnecting_a_disconnected_channel_again_changes_and_records_nothing(channel, alice_api, use_pds):
    assert alice_api.delete(detail_url(channel.pk)).status_code == 204
    before = Channel.objects.get(pk=channel.pk)
    events = list(ChannelEvent.objects.filter(channel=channel).values_list("pk", "kind"))
    assert [kind for _, kind in events].count("disconnected") == 1

    for _ in range(3):
        response = alice_api.delete(detail_url(channel.pk))
        assert response.status_code == 204 and response.content == b""
    after = Channel.objects.get(pk=channel.pk)
    assert list(ChannelEvent.objects.filter(channel=channel).values_list("pk", "kind")) == events
    assert (after.status, after.session_generation, after.updated_at) == (
        before.status,
        before.session_generation,
        before.updated_at,
    )
