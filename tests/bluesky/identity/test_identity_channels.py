"""A channel's identity against real servers: the handle its DID document verifies (after connecting and on every
refresh), two reference PDSes sharing one PLC directory (an account of the second connected while the Service URL
points at the first: refused with the diagnosis, or signed in where it lives), and an account that migrates from one
to the other (the channel follows its DID document on the next refresh).

Handles of the first PDS resolve through its well-known endpoint; handles of the second through TXT records in the
tests' loopback DNS zone (the way a custom-domain handle resolves).
"""

import pytest
from django.db.models import F
from django.urls import reverse

from integrations.bluesky import services
from integrations.bluesky.posts.accept import PartRequest, accept
from integrations.bluesky.posts.plans import PartInput
from integrations.bluesky.posts.store import create_post
from integrations.bluesky.posts.submit import publish
from integrations.bluesky.xrpc import errors
from integrations.exceptions import ChannelNotReady
from integrations.models import Channel, ChannelEvent, Post
from tests.conftest import as_if_refreshed_long_ago, stored
from tests.support.pds.server import Account, LocalPds

pytestmark = [pytest.mark.pds, pytest.mark.django_db]


@pytest.fixture
def zone(pds):
    """The loopback DNS zone every handle lookup asks first; records added by a test are removed after it."""
    before = dict(pds.dns_zone.txt)
    yield pds.dns_zone
    pds.dns_zone.txt.clear()
    pds.dns_zone.txt.update(before)


def publish_text(user, channel: Channel, text: str) -> Post:
    post = create_post(user, channel, [PartInput(text=text, langs=["en"])])
    outcome = publish(post.pk)
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
        accept(user, row, [PartRequest(text="after the move")])

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
    post = accept(user, channel, [PartRequest(text=f"hello @{elsewhere.handle} and @nobody-at-all.test")])
    assert publish(post.pk, claimed=post).error is None
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


# --- what must not happen ----------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # the sweep refreshes in worker threads
def test_the_keep_alive_follows_identity_too(use_pds, channel, account, zone):
    from datetime import timedelta

    from django.utils import timezone

    from integrations.bluesky.accounts import keepalive

    someone_else = use_pds.create_account()
    zone.txt[f"_atproto.{account.handle}"] = [f"did={someone_else.did}"]
    Channel.objects.filter(pk=channel.pk).update(refresh_expires_at=timezone.now() + timedelta(days=1))
    assert keepalive.sweep().refreshed == 1
    assert stored(channel).handle_verified is False


def test_a_service_url_naming_the_pds_differently_than_its_document_is_no_move(use_pds, user, account, monkeypatch):
    from django.conf import settings as django_settings

    alias = use_pds.url.replace("127.0.0.1", "127.0.0.2")  # the same server, by another name than its document's
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", alias)
    channel = services.connect(user, account.handle, account.app_passwords[0])
    assert (channel.status, channel.service_url, channel.handle_verified) == (Channel.Status.ACTIVE, alias, True)
    as_if_refreshed_long_ago(channel)
    services.refresh_channel(channel)
    row = stored(channel)
    assert (row.status, row.pds_url, row.refresh_jwt != "") == (Channel.Status.ACTIVE, alias, True)
    assert publish_text(user, row, "through the alias").status == Post.Status.PUBLISHED


def test_a_handle_lookup_that_fails_for_now_leaves_the_verification_as_it_was(use_pds, channel, monkeypatch):
    from integrations.bluesky.identity import resolution

    monkeypatch.setattr(
        resolution, "_well_known_did", lambda handle: resolution.Failure("unresolved", handle, "ConnectTimeout", True)
    )
    as_if_refreshed_long_ago(channel)
    services.refresh_channel(channel)
    assert stored(channel).handle_verified is True
    assert not stored(channel).events.filter(kind=ChannelEvent.Kind.IDENTITY_CHANGED).exists()


def test_a_stale_reading_of_the_document_never_undoes_a_session_stored_meanwhile(
    use_pds, second_pds, channel, account, monkeypatch
):
    from integrations.bluesky.accounts import following
    from integrations.bluesky.identity import resolution

    real = resolution.resolve_identity

    def slow_resolution(subject, fresh=False):
        found = real(subject, fresh=fresh)
        # While this lookup ran, a reconnection stored a new session on the row.
        Channel.objects.filter(pk=channel.pk).update(session_generation=F("session_generation") + 1)
        return resolution.Identity(found.did, found.handle, True, local_name(second_pds))

    monkeypatch.setattr(resolution, "resolve_identity", slow_resolution)
    before = stored(channel)
    assert following.follow_identity(channel, suspect_move=True) is None
    after = stored(channel)
    assert (after.status, after.refresh_jwt, after.pds_url) == (before.status, before.refresh_jwt, before.pds_url)
    assert use_pds.refresh_with(before.refresh_jwt).status_code == 200  # never signed out


def test_a_document_cached_before_a_migration_does_not_hide_where_the_account_went(
    use_pds, second_pds, zone, user, settings
):
    from integrations.bluesky.identity import resolution

    account = use_pds.create_account()
    old_password = use_pds.create_app_password(account)
    assert resolution.resolve_identity(account.handle).pds == local_name(use_pds)  # cached for an hour
    moved = use_pds.migrate(account, to=second_pds)
    zone.txt[f"_atproto.{account.handle}"] = [f"did={account.did}"]
    settings.INTEGRATIONS_BLUESKY_OTHER_SERVERS = "allow"
    with pytest.raises(errors.AccountMoved):  # the old server's app password: said so, not "wrong password"
        services.connect(user, account.handle, old_password)
    channel = services.connect(user, account.handle, second_pds.create_app_password(moved))
    assert (channel.service_url, channel.status) == (local_name(second_pds), Channel.Status.ACTIVE)


def test_a_move_is_seen_even_when_the_old_server_hands_out_the_new_document(
    use_pds, second_pds, zone, channel, account, monkeypatch
):
    """bsky.social returns the DID document with each session: after a migration, the old server's answer names
    the new PDS. Its tokens are still the old server's, so the channel must not start sending them there."""
    import dataclasses

    from integrations.bluesky.xrpc.client import PdsClient

    use_pds.migrate(account, to=second_pds)
    real = PdsClient.refresh_session

    def with_document(self, refresh_jwt):
        return dataclasses.replace(real(self, refresh_jwt), pds_endpoint=local_name(second_pds))

    monkeypatch.setattr(PdsClient, "refresh_session", with_document)
    as_if_refreshed_long_ago(channel)
    with pytest.raises(errors.AccountMoved):
        services.refresh_channel(channel)
    row = stored(channel)
    assert (row.status, row.refresh_jwt, row.pds_url) == (Channel.Status.NEEDS_RECONNECTION, "", local_name(second_pds))
