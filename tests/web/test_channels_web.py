"""Connecting, refreshing and disconnecting Bluesky channels through the web pages, against the real local PDS."""

import httpx
import pytest
import respx
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from integrations.models import Channel, ChannelEvent, IntegrationOption

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

CONNECT = reverse("integrations:connect-bluesky")
LIST = reverse("integrations:channel-list")


def connect(client, identifier, password):
    return client.post(CONNECT, {"identifier": identifier, "app_password": password})


def page_text(response) -> str:
    return response.content.decode()


def test_connect_with_app_password_stores_the_session_and_lists_the_channel(use_pds, alice_client, account, user):
    use_pds.set_profile(account, "Alice Example", "Posting from the test PDS")
    response = connect(alice_client, f"  @{account.handle.upper()} ", account.app_passwords[0])
    assert response.status_code == 302
    assert response.url == LIST

    channel = Channel.objects.get(user=user)
    assert channel.did == account.did
    assert channel.handle == account.handle
    assert channel.service_url == use_pds.url
    assert channel.scope == "com.atproto.appPass"
    assert channel.access_jwt and channel.refresh_jwt
    assert (channel.access_expires_at - channel.connected_at).total_seconds() == pytest.approx(7200, abs=60)
    assert (channel.refresh_expires_at - channel.connected_at).days in (89, 90)
    assert channel.display_name == "Alice Example"
    assert channel.profile_status == Channel.ProfileStatus.OK
    assert list(channel.events.values_list("kind", flat=True)) == ["profile_updated", "connected"]

    page = page_text(alice_client.get(LIST))
    assert "Alice Example" in page
    assert f"@{account.handle}" in page
    assert account.did in page
    assert "Active" in page
    assert "Connected @" in page  # the success message


def test_connect_by_email_reaches_the_same_account(use_pds, alice_client, account, user):
    response = connect(alice_client, account.email, account.app_passwords[0])
    assert response.status_code == 302
    assert Channel.objects.get(user=user).did == account.did


def test_reconnecting_updates_the_channel_and_revokes_the_old_session(use_pds, alice_client, account, user):
    connect(alice_client, account.handle, account.app_passwords[0])
    first = Channel.objects.get(user=user)
    old_refresh = first.refresh_jwt

    second_password = use_pds.create_app_password(account)
    response = connect(alice_client, account.handle, second_password)
    assert response.status_code == 302
    assert Channel.objects.filter(user=user).count() == 1
    channel = Channel.objects.get(user=user)
    assert channel.pk == first.pk
    assert channel.refresh_jwt != old_refresh
    assert use_pds.refresh_with(old_refresh).json()["error"] == "ExpiredToken"


def test_wrong_password_says_what_to_check_and_stores_nothing(use_pds, alice_client, account, user):
    response = connect(alice_client, account.handle, "wrong-wrong-wrong-wrong")
    assert response.status_code == 400
    text = page_text(response)
    assert "did not accept that handle and app password" in text
    # The service URL is not bsky.social here, so the user is told where accounts are checked.
    assert use_pds.url in text
    assert "wrong-wrong-wrong-wrong" not in text
    assert not Channel.objects.exists()


def test_main_password_is_refused_and_its_session_signed_out(use_pds, alice_client, account, user):
    before = use_pds.session_count(account.did)
    response = connect(alice_client, account.handle, account.password)
    assert response.status_code == 400
    text = page_text(response)
    assert "looks like your main Bluesky password" in text
    assert "https://bsky.app/settings/app-passwords" in text
    assert not Channel.objects.exists()
    # createSession issued one refresh token; deleteSession removed it again.
    assert use_pds.session_count(account.did) == before


def test_privileged_app_password_is_accepted(use_pds, alice_client, pds, user):
    acct = pds.create_account()
    password = pds.create_app_password(acct, privileged=True)
    assert connect(alice_client, acct.handle, password).status_code == 302
    assert Channel.objects.get(user=user).scope == "com.atproto.appPassPrivileged"


def test_deactivated_account_is_refused_with_advice(use_pds, alice_client, pds, user):
    acct = pds.create_account()
    password = pds.create_app_password(acct)
    pds.deactivate(acct)
    response = connect(alice_client, acct.handle, password)
    assert response.status_code == 400
    assert "deactivated" in page_text(response)
    assert not Channel.objects.exists()


def test_unreachable_pds_is_reported_and_nothing_stored(alice_client, monkeypatch, account, user):
    monkeypatch.setattr(
        django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "http://127.0.0.1:9"
    )  # discard port: connection refused
    response = connect(alice_client, account.handle, account.app_passwords[0])
    assert response.status_code == 400
    assert "Could not reach the Bluesky server at http://127.0.0.1:9" in page_text(response)
    assert not Channel.objects.exists()


def test_disabled_integration_refuses_connecting_and_keeps_existing_channels(use_pds, alice_client, account, user):
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)
    IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")

    from tests.web.test_posts_web import SWITCHED_OFF

    page = page_text(alice_client.get(LIST))
    assert SWITCHED_OFF in page
    assert f"@{account.handle}" in page

    response = connect(alice_client, account.handle, account.app_passwords[0])
    assert response.status_code == 400
    assert SWITCHED_OFF in page_text(response)
    unchanged = Channel.objects.get(pk=channel.pk)
    assert unchanged.refresh_jwt == channel.refresh_jwt
    assert unchanged.status == Channel.Status.ACTIVE


def test_refresh_rotates_tokens_and_updates_the_profile(use_pds, alice_client, account, user):
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)
    use_pds.set_profile(account, "New Name")

    response = alice_client.post(reverse("integrations:channel-refresh", args=[channel.pk]))
    assert response.status_code == 302
    refreshed = Channel.objects.get(pk=channel.pk)
    assert refreshed.refresh_jwt != channel.refresh_jwt
    assert refreshed.refreshed_at is not None
    assert refreshed.display_name == "New Name"
    assert use_pds.refresh_count(account.did) == 1
    # The rotated refresh token is the one the PDS now honours.
    assert use_pds.refresh_with(refreshed.refresh_jwt).status_code == 200
    kinds = set(refreshed.events.values_list("kind", flat=True))
    assert {"refreshed", "profile_updated"} <= kinds


def test_disconnect_revokes_the_session_on_the_pds(use_pds, alice_client, account, user):
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)
    refresh_jwt = channel.refresh_jwt

    response = alice_client.post(reverse("integrations:channel-disconnect", args=[channel.pk]), {"confirm": "yes"})
    assert response.status_code == 302
    gone = Channel.objects.get(pk=channel.pk)
    assert gone.status == Channel.Status.DISCONNECTED
    assert gone.access_jwt == "" and gone.refresh_jwt == ""
    answer = use_pds.refresh_with(refresh_jwt)
    assert answer.status_code == 400
    assert answer.json()["error"] == "ExpiredToken"
    assert ChannelEvent.objects.filter(channel=gone, kind="disconnected").exists()

    page = page_text(alice_client.get(LIST))
    assert "Disconnected" in page and "Reconnect" in page

    # Reconnecting brings the same channel back.
    connect(alice_client, account.handle, account.app_passwords[0])
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ACTIVE


def test_disconnect_and_remove_ask_first_and_refresh_needs_post(use_pds, alice_client, account, user):
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)
    assert alice_client.get(reverse("integrations:channel-refresh", args=[channel.pk])).status_code == 405
    disconnect = reverse("integrations:channel-disconnect", args=[channel.pk])
    # Without the confirmation (a GET, or a POST without it): a page that asks, which works without a script.
    for asked in (
        alice_client.get(disconnect),
        alice_client.post(disconnect),
        alice_client.post(disconnect, {"next": "detail"}),
    ):
        page = page_text(asked)
        assert asked.status_code == 200 and f"Disconnect @{account.handle}?" in page
        assert 'name="confirm" value="yes"' in page and "Keep it connected" in page
    assert 'name="next" value="detail"' in page
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ACTIVE
    assert use_pds.refresh_with(Channel.objects.get(pk=channel.pk).refresh_jwt).status_code == 200  # still signed in
    # The lists ask in place (a disclosure, no script either), and the answer carries the confirmation.
    listing = page_text(alice_client.get(LIST))
    assert "Disconnect…" in listing and f'action="{disconnect}"' in listing
    assert listing.split(f'action="{disconnect}"')[1].split("</form>")[0].count('name="confirm" value="yes"') == 1
    response = alice_client.post(disconnect, {"confirm": "yes", "next": "detail"})
    assert response.status_code == 302 and response.url == channel.get_absolute_url()
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.DISCONNECTED
    remove = reverse("integrations:channel-remove", args=[channel.pk])
    assert f"Remove @{account.handle}?" in page_text(alice_client.post(remove))
    assert Channel.objects.filter(pk=channel.pk).exists()


def test_profile_unavailable_still_connects(use_pds, alice_client, account, user, monkeypatch):
    from integrations.bluesky.xrpc import client as bluesky_client
    from integrations.bluesky.xrpc import errors

    def broken(self, access_jwt, did):
        raise errors.PdsServerError(status_code=502)

    monkeypatch.setattr(bluesky_client.PdsClient, "get_profile", broken)
    response = connect(alice_client, account.handle, account.app_passwords[0])
    assert response.status_code == 302
    channel = Channel.objects.get(user=user)
    assert channel.profile_status == Channel.ProfileStatus.UNAVAILABLE
    page = page_text(alice_client.get(LIST))
    assert "profile could not be loaded" in page
    assert "profile unavailable" in page


def test_another_users_channel_is_a_404(use_pds, alice_client, account, user, other_user):
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)

    client = Client()
    client.force_login(other_user)
    assert client.get(reverse("integrations:channel-detail", args=[channel.pk])).status_code == 404
    for name in ("integrations:channel-refresh", "integrations:channel-disconnect", "integrations:channel-remove"):
        assert client.post(reverse(name, args=[channel.pk])).status_code == 404
    assert account.handle not in page_text(client.get(LIST))
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ACTIVE


def test_channel_pages_need_sign_in(client):
    response = client.get(LIST)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_bad_identifier_is_refused_before_calling_the_pds(use_pds, alice_client):
    response = connect(alice_client, "not a handle", "abcd-efgh-ijkl-mnop")
    assert response.status_code == 400
    assert "not a valid Bluesky handle" in page_text(response)
    assert not Channel.objects.exists()


def test_a_dead_session_is_announced_once_with_what_to_do(use_pds, alice_client, account, user):
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)
    alice_client.get(LIST)  # consume the "Connected" message
    use_pds.delete_session(channel.refresh_jwt)
    response = alice_client.post(reverse("integrations:channel-refresh", args=[channel.pk]))
    assert response.status_code == 302
    first = page_text(alice_client.get(LIST))
    assert "Bluesky ended this channel" in first  # the refresh's own error message
    assert f"@{account.handle}: Needs reconnection." in first  # the one-time announcement
    second = page_text(alice_client.get(LIST))
    assert f"@{account.handle}: Needs reconnection." not in second
    assert "Needs reconnection" in second  # the badge and advice stay

    # Reconnecting clears it; a second death is announced again.
    connect(alice_client, account.handle, account.app_passwords[0])
    alice_client.get(LIST)
    use_pds.delete_session(Channel.objects.get(pk=channel.pk).refresh_jwt)
    alice_client.post(reverse("integrations:channel-refresh", args=[channel.pk]))
    assert f"@{account.handle}: Needs reconnection." in page_text(alice_client.get(LIST))


def test_pds_endpoint_from_the_did_document_is_used_for_the_session(use_pds, alice_client, account, user):
    """bsky.social answers createSession with a DID document naming the account's own PDS: later calls go there."""
    own_pds = use_pds.url.replace("127.0.0.1", "localhost")  # the same server under another name
    real = httpx.post(
        f"{use_pds.url}/xrpc/com.atproto.server.createSession",
        json={"identifier": account.handle, "password": account.app_passwords[0]},
    ).json()
    did_doc = {
        "id": account.did,
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": own_pds}],
    }
    with respx.mock(assert_all_called=False) as mock:
        mock.post(url__regex=r".*/xrpc/com\.atproto\.server\.createSession").mock(
            return_value=httpx.Response(200, json={**real, "didDoc": did_doc})
        )
        mock.route().pass_through()
        assert connect(alice_client, account.handle, account.app_passwords[0]).status_code == 302
        profile_calls = [c.request.url.host for c in mock.calls if "getRecord" in str(c.request.url)]
    channel = Channel.objects.get(user=user)
    assert channel.service_url == use_pds.url
    assert channel.pds_endpoint == own_pds
    assert profile_calls and set(profile_calls) == {"localhost"}
    assert channel.profile_status == Channel.ProfileStatus.OK


def test_remove_deletes_only_a_disconnected_channel(use_pds, alice_client, account, user):
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)
    remove = reverse("integrations:channel-remove", args=[channel.pk])

    alice_client.post(remove, {"confirm": "yes"})
    assert "Disconnect the channel before removing it." in page_text(alice_client.get(LIST))
    assert Channel.objects.filter(pk=channel.pk, status="active").exists()

    alice_client.post(reverse("integrations:channel-disconnect", args=[channel.pk]), {"confirm": "yes"})
    alice_client.post(remove, {"confirm": "yes"})
    assert not Channel.objects.filter(pk=channel.pk).exists()
    assert not ChannelEvent.objects.filter(channel_id=channel.pk).exists()
    assert f"Removed @{account.handle}." in page_text(alice_client.get(LIST))


PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d"
    "0000000049454e44ae426082"
)


def test_avatar_is_shown_from_the_accounts_pds(use_pds, alice_client, account, user):
    use_pds.set_profile(account, "With Avatar", avatar_png=PIXEL_PNG)
    connect(alice_client, account.handle, account.app_passwords[0])
    channel = Channel.objects.get(user=user)
    assert channel.avatar_url.startswith(f"{use_pds.url}/xrpc/com.atproto.sync.getBlob?")
    image = httpx.get(channel.avatar_url)
    assert image.status_code == 200 and image.content == PIXEL_PNG
    assert f'<img class="avatar" src="{channel.avatar_url.replace("&", "&amp;")}"' in page_text(alice_client.get(LIST))
