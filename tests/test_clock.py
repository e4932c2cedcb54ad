"""One clock on every page: the user's zone (their profile's, else their browser's, else the site's) for scheduled,
published and channel dates alike, named once per page; and a post keeps when it was written, scheduled for and
went out."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.adapter import IntegrationsAdapter
from integrations.bluesky.posts.accept import PartRequest, accept
from integrations.bluesky.posts.submit import publish, publish_due
from integrations.models import Channel, Post
from tests.web.test_posts_web import body, errors_of, text_of

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

POSTS = reverse("integrations:post-list")
TOKYO = ZoneInfo("Asia/Tokyo")
ZONE_LABELS = re.compile(r"\b(UTC|JST|GMT|CET|CEST|PST|PDT)\b")


def tokyo_evening(days: int = 2) -> datetime:
    """23:07 in Tokyo a few days ahead: 14:07 UTC, the same day; the UTC date and Tokyo's differ from 00:00 UTC."""
    day = (timezone.now() + timedelta(days=days)).astimezone(TOKYO).date()
    return datetime(day.year, day.month, day.day, 23, 7, tzinfo=TOKYO)


def test_scheduled_and_channel_times_are_on_the_browsers_clock_and_the_zone_is_named_once(alice_client, user, channel):
    alice_client.cookies["skyport_tz"] = "Asia/Tokyo"  # what clock.js sets
    when = tokyo_evening()
    data = body(channel, "late in Tokyo", scheduled_at=f"{when:%Y-%m-%dT%H:%M}", time_zone="Asia/Tokyo")
    response = alice_client.post(reverse("integrations:compose"), data, follow=True)
    assert Post.objects.get().scheduled_at == when, errors_of(response)
    assert f"for {when:%Y-%m-%d} 23:07." in text_of(response)  # the message says it on the same clock

    listing = text_of(alice_client.get(POSTS))
    day = listing.split(f'data-scheduled-day="{when:%Y-%m-%d}"')
    assert len(day) == 2, "the day heading is the Tokyo date"
    assert f'<h3 class="day">{when:%A, %Y-%m-%d}</h3>' in listing
    assert "data-scheduled-time>23:07<" in day[1]  # and the time under it agrees (not 14:07)
    assert listing.count("Asia/Tokyo") == 1 and not ZONE_LABELS.search(listing)

    page = text_of(alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])))
    assert f"Next: {when:%Y-%m-%d} 23:07" in page
    connected = timezone.localtime(Channel.objects.get().connected_at, TOKYO)
    assert f"<dd>{connected:%Y-%m-%d %H:%M}</dd>" in page
    assert page.count("Asia/Tokyo") == 1 and not ZONE_LABELS.search(page)
    listing = text_of(alice_client.get(reverse("integrations:channel-list")))
    assert f"<dd>{connected:%Y-%m-%d %H:%M}</dd>" in listing and not ZONE_LABELS.search(listing)

    # The composer names the zone it reads "Publish later" in; the edit page shows the stored time on that clock.
    compose = text_of(alice_client.get(reverse("integrations:compose")))
    assert "Times are in Asia/Tokyo." in compose and 'name="time_zone" value="Asia/Tokyo"' in compose
    edit = text_of(alice_client.get(reverse("integrations:post-edit", args=[Post.objects.get().pk])))
    assert f'value="{when:%Y-%m-%dT%H:%M}"' in edit


class ProfileZoneAdapter(IntegrationsAdapter):
    def user_time_zone(self, user):
        return "America/Los_Angeles" if user.username == "alice" else ""


def test_the_profiles_zone_comes_before_the_browsers_and_a_bad_one_falls_back_to_the_sites(
    alice_client, user, channel, settings
):
    when = tokyo_evening()
    accept(user, channel, [PartRequest("planned")], scheduled_at=when)
    alice_client.cookies["skyport_tz"] = "Asia/Tokyo"
    settings.INTEGRATIONS_ADAPTER = f"{__name__}.ProfileZoneAdapter"
    listing = text_of(alice_client.get(POSTS))
    la = timezone.localtime(when, ZoneInfo("America/Los_Angeles"))
    assert "Times in America/Los_Angeles" in listing and f"data-scheduled-time>{la:%H:%M}<" in listing

    settings.INTEGRATIONS_ADAPTER = "integrations.adapter.IntegrationsAdapter"
    for cookie in ("../../etc/passwd", "Not/AZone", "x" * 100, ""):
        alice_client.cookies["skyport_tz"] = cookie
        listing = text_of(alice_client.get(POSTS))
        utc = timezone.localtime(when, ZoneInfo("UTC"))
        assert "Times in UTC" in listing and f"data-scheduled-time>{utc:%H:%M}<" in listing, cookie


def test_an_edit_keeps_when_a_post_was_written_and_the_history_is_sorted_by_when_posts_went_out(
    alice_client, user, channel
):
    now = timezone.now()
    scheduled = accept(user, channel, [PartRequest("planned long ago")], scheduled_at=now + timedelta(hours=1))
    Post.objects.filter(pk=scheduled.pk).update(created_at=now - timedelta(days=3))
    edit = reverse("integrations:post-edit", args=[scheduled.pk])
    data = body(
        channel,
        "planned, then edited",
        scheduled_at=timezone.localtime(now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        time_zone="UTC",
    )
    del data["channel"]
    assert alice_client.post(edit, data).status_code == 302
    assert Post.objects.get(pk=scheduled.pk).created_at == now - timedelta(days=3)  # not reset by the edit

    direct = accept(user, channel, [PartRequest("published at once")])
    publish(direct.pk, claimed=direct)
    Post.objects.filter(pk=scheduled.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    went_out = now - timedelta(days=1)  # as if a day ago, a minute after its time
    Post.objects.filter(pk=scheduled.pk).update(scheduled_at=went_out - timedelta(minutes=1), published_at=went_out)
    Post.objects.filter(pk=direct.pk).update(created_at=now - timedelta(days=2), published_at=now - timedelta(days=2))

    listing = text_of(alice_client.get(POSTS))
    assert listing.index("planned, then edited") < listing.index("published at once")  # it went out later
    row = listing.split(f'data-post="{scheduled.pk}"')[1].split("</li>")[0]
    shown = timezone.localtime(Post.objects.get(pk=scheduled.pk).scheduled_at, ZoneInfo("UTC"))
    assert f"went out {went_out:%Y-%m-%d %H:%M}" in row and f"scheduled for {shown:%Y-%m-%d %H:%M}" in row
    row = listing.split(f'data-post="{direct.pk}"')[1].split("</li>")[0]
    assert "went out" in row and "scheduled for" not in row


def test_a_channels_retry_time_and_a_missed_posts_time_are_said_on_the_same_clock(alice_client, user, channel):
    retry = timezone.now() + timedelta(minutes=20)
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.DEGRADED, next_retry_at=retry)
    missed = accept(user, channel, [PartRequest("too late")], scheduled_at=tokyo_evening())
    Post.objects.filter(pk=missed.pk).update(scheduled_at=timezone.now() - timedelta(days=2))
    assert publish_due() == {Post.Status.FAILED: 1}
    assert Post.objects.get(pk=missed.pk).error_message.count(" UTC") == 1  # stored as the worker said it
    alice_client.cookies["skyport_tz"] = "Asia/Tokyo"

    page = text_of(alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])))
    assert f"at {timezone.localtime(retry, TOKYO):%Y-%m-%d %H:%M}." in page and not ZONE_LABELS.search(page)
    listing = text_of(alice_client.get(POSTS))
    due = timezone.localtime(Post.objects.get(pk=missed.pk).scheduled_at, TOKYO)
    assert f"it was due at {due:%Y-%m-%d %H:%M} and could not go out" in listing and not ZONE_LABELS.search(listing)
