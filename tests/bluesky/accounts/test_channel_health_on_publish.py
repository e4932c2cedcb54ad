"""A post that fails because of the channel's account (deactivated, suspended) or its session (dead) changes the
channel's health at once: its page, the API and the signal say so without anyone pressing Refresh, and a dead
session shows no validity date."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.bluesky import services
from integrations.bluesky.accounts import door
from integrations.bluesky.posts.plans import PartInput
from integrations.bluesky.posts.store import create_post
from integrations.bluesky.posts.submit import publish
from integrations.bluesky.xrpc import errors
from integrations.models import Channel, ChannelEvent
from integrations.signals import channel_health_changed
from tests.browser.test_browser import SHOTS, log_in_browser, page  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.pds]


def revoke_app_password(pds, account) -> None:
    """Revoking an app password on the PDS ends every session signed in with it (its access tokens keep working
    until they expire; a refresh is refused)."""
    names = pds.xrpc("GET", "com.atproto.server.listAppPasswords", token=account.access_jwt).json()["passwords"]
    for entry in names:
        pds.xrpc(
            "POST", "com.atproto.server.revokeAppPassword", token=account.access_jwt, json={"name": entry["name"]}
        ).raise_for_status()


def write() -> dict:
    record = {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-01-01T00:00:00.000Z"}
    return {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": record}


@pytest.mark.django_db
def test_a_post_refused_because_the_account_is_deactivated_marks_the_channel_at_once(
    use_pds, user, channel, account, django_capture_on_commit_callbacks
):
    heard = []

    def hear(sender, channel, old_state, new_state, **kwargs):
        heard.append((old_state, new_state))

    channel_health_changed.connect(hear)
    use_pds.deactivate(account)
    post = create_post(user, channel, [PartInput(text="hello", langs=["en"])])
    with django_capture_on_commit_callbacks(execute=True):
        outcome = publish(post.pk)
    channel_health_changed.disconnect(hear)
    assert outcome.error is not None and outcome.error.code == "account_deactivated"

    row = Channel.objects.get(pk=channel.pk)
    assert (row.status, services.health(row).state) == (Channel.Status.DEACTIVATED, "deactivated")
    assert row.events.filter(kind=ChannelEvent.Kind.CALL_REFUSED, error_code="account_deactivated").count() == 1
    assert ("active", "deactivated") in heard
    # A second refused call tells nothing new: one event.
    with pytest.raises(errors.AccountDeactivated):
        door.call(row, lambda client, token: client.apply_writes(token, row.did, [write()]))
    assert row.events.filter(kind=ChannelEvent.Kind.CALL_REFUSED).count() == 1

    # Reactivated, a refresh makes it active again.
    use_pds.xrpc("POST", "com.atproto.server.activateAccount", token=account.access_jwt).raise_for_status()
    services.refresh_channel(row)
    assert services.health(Channel.objects.get(pk=channel.pk)).state == "active"


@pytest.mark.django_db
def test_a_suspended_account_refusing_a_post_marks_the_channel(use_pds, user, channel, monkeypatch):
    from integrations.bluesky.xrpc.client import PdsClient

    def refused(self, *args, **kwargs):
        raise errors.AccountSuspended("Account has been taken down", status_code=400, upstream_error="AccountTakedown")

    monkeypatch.setattr(PdsClient, "apply_writes", refused)  # the reference PDS takes accounts down only by admin
    post = create_post(user, channel, [PartInput(text="hello", langs=["en"])])
    assert publish(post.pk).error.code == "account_suspended"
    assert services.health(Channel.objects.get(pk=channel.pk)).state == "suspended"


@pytest.mark.django_db
def test_a_post_on_a_dead_session_leaves_no_validity_date(use_pds, user, channel, account, api):
    revoke_app_password(use_pds, account)
    Channel.objects.filter(pk=channel.pk).update(access_expires_at=timezone.now() - timedelta(minutes=1))
    post = create_post(user, Channel.objects.get(pk=channel.pk), [PartInput(text="hi", langs=["en"])])
    assert publish(post.pk).error.code == "session_expired"
    row = Channel.objects.get(pk=channel.pk)
    assert services.health(row).state == "needs_reconnection"
    assert row.refresh_expires_at is None
    body = api.get(f"/api/v1/channels/{channel.pk}/").json()
    assert body["health"]["state"] == "needs_reconnection"
    assert body["refresh_expires_at"] is None


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_channel_page_shows_a_failed_posts_reason_without_a_refresh(page, live_server, use_pds, user, account):  # noqa: F811
    channel = services.connect(user, account.handle, account.app_passwords[0])
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    expect(page.locator(".badge.active")).to_have_text("Active")
    expect(page.locator("#session-valid-until")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")
    )  # the page's clock

    use_pds.deactivate(account)
    page.goto(f"{live_server.url}/app/posts/new?channel={channel.pk}")
    page.fill("#id_parts-0-text", "Is anyone there?")
    page.click("button[value=publish]:not([tabindex])")
    expect(page.locator(".messages")).to_contain_text("deactivated")
    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    expect(page.locator(".title .badge")).to_have_text("Account deactivated")
    page.screenshot(path=SHOTS / "channel-deactivated-after-a-post.png", full_page=True)

    # A dead session (its app password revoked, the access token ended): the next post says so, the page too.
    use_pds.xrpc("POST", "com.atproto.server.activateAccount", token=account.access_jwt).raise_for_status()
    door.refresh(Channel.objects.get(pk=channel.pk), force=True)
    revoke_app_password(use_pds, account)
    Channel.objects.filter(pk=channel.pk).update(access_expires_at=timezone.now() - timedelta(minutes=1))
    page.goto(f"{live_server.url}/app/posts/new?channel={channel.pk}")
    page.fill("#id_parts-0-text", "Still there?")
    page.click("button[value=publish]:not([tabindex])")
    expect(page.locator(".messages")).to_contain_text("Reconnect it with a new app password")
    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    expect(page.locator(".title .badge")).to_have_text("Needs reconnection")
    expect(page.locator("#session-valid-until")).to_have_text("—")
    page.screenshot(path=SHOTS / "channel-dead-session-after-a-post.png", full_page=True)
