"""A channel's identity against real servers: the handle its DID document verifies (after connecting and on every
refresh), two reference PDSes sharing one PLC directory (an account of the second connected while the Service URL
points at the first: refused with the diagnosis, or signed in where it lives), and an account that migrates from one
to the other (the channel follows its DID document on the next refresh).

Handles of the first PDS resolve through its well-known endpoint; handles of the second through TXT records in the
tests' loopback DNS zone (the way a custom-domain handle resolves).
"""

from collections.abc import Iterator

import pytest
from django.urls import reverse

from integrations.bluesky import errors, publishing, services
from integrations.bluesky.plans import PartInput
from integrations.exceptions import ChannelNotReady
from integrations.models import Channel, Post
from tests.conftest import as_if_refreshed_long_ago, stored
from tests.pds.server import Account, LocalPds

pytestmark = [pytest.mark.pds, pytest.mark.django_db]


@pytest.fixture(scope="module")
def second_pds(pds) -> Iterator[LocalPds]:
    """Another reference PDS, registering its accounts in the first one's PLC directory."""
    server = LocalPds(plc_url=pds.plc_url)
    yield server
    server.stop()


@pytest.fixture
def zone(pds):
    """The loopback DNS zone every handle lookup asks first; records added by a test are removed after it."""
    before = dict(pds.dns_zone.txt)
    yield pds.dns_zone
    pds.dns_zone.txt.clear()
    pds.dns_zone.txt.update(before)


def publish_text(user, channel: Channel, text: str) -> Post:
    post = publishing.create_post(user, channel, [PartInput(text=text, langs=["en"])])
    outcome = publishing.publish(post.pk)
    assert outcome.error is None, outcome.error
    return outcome.post


def record_texts(server: LocalPds, did: str) -> list[str]:
    """What a server's copy of the repository holds (read from it directly)."""
    page = server.xrpc("GET", "com.atproto.repo.listRecords", params={"repo": did, "collection": "app.bsky.feed.post"})
    return [item["value"]["text"] for item in page.json().get("records", [])] if page.status_code == 200 else []


def account_on(server: LocalPds, zone) -> Account:
    """An account on `server` whose handle resolves by a DNS TXT record, with an app password."""
    account = server.create_account()
    server.create_app_password(account)
    zone.txt[f"_atproto.{account.handle}"] = [f"did={account.did}"]
    return account


def local_name(server: LocalPds) -> str:
    """A server's URL as the DID documents it writes name it."""
    return f"http://localhost:{server.port}"


# --- the handle shown ---------------------------------------------------------------------------------------------
def test_a_connected_channel_carries_the_handle_its_did_document_verifies(channel, account, alice_client):
    assert (channel.handle, channel.handle_verified) == (account.handle, True)
    page = alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])).content.decode()
    assert "handle not verified" not in page


def test_a_handle_changed_on_the_pds_is_shown_after_the_next_refresh(use_pds, channel, account, zone):
    new_handle = f"renamed{account.did[-6:]}.test"
    use_pds.xrpc(
        "POST", "com.atproto.identity.updateHandle", token=account.access_jwt, json={"handle": new_handle}
    ).raise_for_status()
    as_if_refreshed_long_ago(channel)
    services.refresh_channel(channel)
    row = stored(channel)
    assert (row.handle, row.handle_verified) == (new_handle, True)


def test_a_handle_that_resolves_to_another_account_is_shown_as_not_verified(
    use_pds, channel, account, zone, alice_client, user
):
    someone_else = use_pds.create_account()
    zone.txt[f"_atproto.{account.handle}"] = [f"did={someone_else.did}"]  # the handle's DNS now names another DID
    as_if_refreshed_long_ago(channel)
    services.refresh_channel(channel)
    row = stored(channel)
    assert (row.handle, row.handle_verified, row.status) == (account.handle, False, Channel.Status.ACTIVE)
    page = " ".join(
        alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])).content.decode().split()
    )
    assert 'id="handle-unverified">handle not verified' in page
    assert f"does not resolve to {account.did}" in page
    assert "handle not verified" in alice_client.get(reverse("integrations:channel-list")).content.decode()
    api = alice_client.get(f"/api/v1/channels/{channel.pk}/").json()
    assert api["handle_verified"] is False
    assert publish_text(user, row, "still publishing").status == Post.Status.PUBLISHED  # a warning, not a block

    del zone.txt[f"_atproto.{account.handle}"]  # fixed: the next refresh verifies it again
    as_if_refreshed_long_ago(row)
    services.refresh_channel(row)
    assert stored(channel).handle_verified is True


# --- two servers, one PLC directory ---------------------------------------------------------------------------------
def test_an_account_of_the_second_server_is_refused_with_where_it_lives(use_pds, second_pds, zone, alice_client, user):
    account = account_on(second_pds, zone)
    response = alice_client.post(
        reverse("integrations:connect-bluesky"),
        {"identifier": account.handle, "app_password": account.app_passwords[0]},
    )
    text = " ".join(response.content.decode().split())
    assert (
        f"@{account.handle} is hosted on {local_name(second_pds)}, but this site signs in through {use_pds.url}. "
        f"Ask your administrator to allow accounts on other servers, or to set {local_name(second_pds)} as the "
        "Service URL."
    ) in text
    assert not Channel.objects.exists()
    assert second_pds.session_count(account.did) == 1  # only the session the test's account creation opened


def test_with_other_servers_allowed_it_signs_in_and_publishes_on_its_own_server(
    use_pds, second_pds, zone, user, settings
):
    settings.INTEGRATIONS_BLUESKY_OTHER_SERVERS = "allow"
    account = account_on(second_pds, zone)
    channel = services.connect(user, account.handle, account.app_passwords[0])
    assert channel.service_url == local_name(second_pds)
    assert (channel.handle, channel.handle_verified, channel.status) == (account.handle, True, Channel.Status.ACTIVE)
    publish_text(user, channel, "hello from the second server")
    assert record_texts(second_pds, account.did) == ["hello from the second server"]
    assert record_texts(use_pds, account.did) == []

    as_if_refreshed_long_ago(channel)
    services.refresh_channel(channel)  # refreshes go to the account's own server too
    assert stored(channel).status == Channel.Status.ACTIVE and second_pds.refresh_count(account.did) == 1


# --- an account that moves ------------------------------------------------------------------------------------------
def test_a_migrated_account_is_followed_on_the_next_refresh_and_reconnects_where_it_lives(
    use_pds, second_pds, zone, channel, account, user, alice_client, settings
):
    publish_text(user, channel, "before the move")
    moved = use_pds.migrate(account, to=second_pds)
    zone.txt[f"_atproto.{account.handle}"] = [f"did={account.did}"]  # the handle now resolves by DNS
    as_if_refreshed_long_ago(channel)

    with pytest.raises(errors.AccountMoved) as raised:
        services.refresh_channel(channel)
    assert raised.value.pds == local_name(second_pds)
    row = stored(channel)
    assert (row.status, row.last_error_code) == (Channel.Status.NEEDS_RECONNECTION, "account_moved")
    assert row.pds_url == local_name(second_pds) and not row.refresh_jwt and not row.access_jwt
    assert use_pds.session_count(account.did) == use_pds.refresh_count(account.did) + 1  # old chain signed out
    page = " ".join(
        alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])).content.decode().split()
    )
    assert f'This account moved to <a href="{local_name(second_pds)}"' in page
    with pytest.raises(ChannelNotReady):
        publishing.accept(user, row, [publishing.PartRequest(text="after the move")])

    # Reconnecting with the old server's app password: the old server signs the deactivated account in, but its
    # DID document places it on the second server: refused with where it lives (other servers not allowed)...
    with pytest.raises(errors.HostedElsewhere):
        services.connect(user, account.handle, account.app_passwords[0])
    # ... and with other servers allowed, an app password made on the new server connects the channel there.
    settings.INTEGRATIONS_BLUESKY_OTHER_SERVERS = "allow"
    new_password = second_pds.create_app_password(moved)
    reconnected = services.connect(user, account.handle, new_password)
    assert reconnected.pk == channel.pk
    assert (reconnected.service_url, reconnected.status) == (local_name(second_pds), Channel.Status.ACTIVE)
    publish_text(user, reconnected, "after the move")
    assert sorted(record_texts(second_pds, account.did)) == ["after the move", "before the move"]


def test_a_mention_of_an_account_on_another_server_links_the_did_its_handle_names(
    use_pds, second_pds, zone, channel, account, user
):
    elsewhere = account_on(second_pds, zone)  # its handle resolves by DNS only; the channel's PDS cannot resolve it
    post = publishing.accept(
        user, channel, [publishing.PartRequest(text=f"hello @{elsewhere.handle} and @nobody-at-all.test")]
    )
    assert publishing.publish(post.pk, claimed=post).error is None
    page = use_pds.xrpc(
        "GET", "com.atproto.repo.listRecords", params={"repo": account.did, "collection": "app.bsky.feed.post"}
    ).json()
    record = next(item["value"] for item in page["records"] if item["uri"] == post.parts.get().uri)
    mentions = [
        feature["did"]
        for facet in record.get("facets", [])
        for feature in facet["features"]
        if feature["$type"] == "app.bsky.richtext.facet#mention"
    ]
    assert mentions == [elsewhere.did]  # the handle that resolves nowhere stays plain text
