"""Scheduled posts against the real local PDS: stored `scheduled`, changed or cancelled until they start, published
once by whichever worker claims them at their time, waiting (or missed) while their channel cannot publish."""

import re
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from integrations.bluesky.posts import cards
from integrations.bluesky.posts.accept import PartRequest, accept, edit
from integrations.bluesky.posts.cards import CARD_LATE_NOTE, CARD_PENDING_NOTE, build_pending_cards
from integrations.bluesky.posts.schedule import cancel, reschedule
from integrations.bluesky.posts.submit import publish, publish_due
from integrations.exceptions import PostNotScheduled, ScheduledInThePast
from integrations.models import Channel, IntegrationOption, Post
from integrations.posting.due import due_posts
from tests.bluesky.posts.test_linkcards import site  # noqa: F401 (a fixture)
from tests.bluesky.posts.test_publishing import records

pytestmark = [pytest.mark.pds, pytest.mark.django_db(transaction=True)]


def schedule(user, channel, *texts: str, seconds: float = 3600) -> Post:
    when = timezone.now() + timedelta(seconds=seconds)
    return accept(user, channel, [PartRequest(text=t, link_card=None) for t in texts], scheduled_at=when)


def make_due(*posts: Post) -> None:
    Post.objects.filter(pk__in=[p.pk for p in posts]).update(scheduled_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize("seconds", [-60, 0, 0.5])
def test_a_time_past_or_only_a_moment_away_is_refused_and_nothing_is_stored(seconds, user, channel):
    with pytest.raises(ScheduledInThePast):
        schedule(user, channel, "too late", seconds=seconds)
    assert not Post.objects.exists()


def test_a_scheduled_post_waits_unclaimed_with_its_time_as_createdAt(user, channel):
    post = schedule(user, channel, "later", "and a reply")
    stored = Post.objects.get(pk=post.pk)
    assert stored.status == Post.Status.SCHEDULED
    assert stored.attempts == 0 and stored.lease_until is None
    first = stored.parts.get(index=0)
    assert first.record["createdAt"].startswith(stored.scheduled_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert due_posts() == []
    assert publish_due() == {}


def test_a_post_scheduled_seconds_ahead_goes_out_at_its_time_and_only_once(use_pds, user, channel, account):
    post = schedule(user, channel, "right on time", "second part", seconds=3)
    assert publish_due() == {}  # not before its time
    assert records(use_pds, account.did) == []
    time.sleep(max(0.0, (post.scheduled_at - timezone.now()).total_seconds()) + 0.2)
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert publish_due() == {}
    stored = {r["uri"]: r for r in records(use_pds, account.did)}
    parts = list(Post.objects.get(pk=post.pk).parts.all())
    assert sorted(stored) == sorted(p.uri for p in parts)
    assert [stored[p.uri]["cid"] for p in parts] == [p.expected_cid for p in parts]


def test_a_cancelled_post_is_never_published(use_pds, user, channel, account):
    post = schedule(user, channel, "never mind")
    cancel(post)
    kept = Post.objects.get(pk=post.pk)  # in its owner's history
    assert kept.status == Post.Status.CANCELLED and kept.cancelled_at is not None
    assert kept.parts.get().text == "never mind"
    assert publish_due(timezone.now() + timedelta(days=1)) == {}
    assert records(use_pds, account.did) == []


def test_a_post_that_started_cannot_be_cancelled_rescheduled_or_edited(user, channel):
    post = schedule(user, channel, "started")
    make_due(post)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.PUBLISHING, attempts=1)
    with pytest.raises(PostNotScheduled):
        cancel(post)
    with pytest.raises(PostNotScheduled):
        reschedule(post, timezone.now() + timedelta(hours=1))
    with pytest.raises(PostNotScheduled):
        edit(post, [PartRequest(text="changed", link_card=None)])


def test_a_rescheduled_thread_is_replanned_for_its_new_time(use_pds, user, channel, account):
    post = schedule(user, channel, "one", "two", "three")
    keys = [p.rkey for p in post.parts.all()]
    reschedule(post, timezone.now() + timedelta(hours=2))
    parts = list(Post.objects.get(pk=post.pk).parts.all())
    assert [p.rkey for p in parts] != keys
    assert publish_due() == {}  # not due yet
    make_due(post)
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    stored = {r["uri"]: r for r in records(use_pds, account.did)}
    parts = list(Post.objects.get(pk=post.pk).parts.all())
    assert [stored[p.uri]["cid"] for p in parts] == [p.expected_cid for p in parts]  # the new plan, as computed
    assert stored[parts[2].uri]["value"]["reply"]["parent"]["uri"] == parts[1].uri
    assert stored[parts[2].uri]["value"]["reply"]["root"]["uri"] == parts[0].uri


def test_an_edited_post_keeps_its_id_and_goes_out_with_the_new_text(use_pds, user, channel, account):
    post = schedule(user, channel, "draft")
    written = timezone.now() - timedelta(days=2)
    Post.objects.filter(pk=post.pk).update(created_at=written)
    edited = edit(post, [PartRequest(text="final", link_card=None)])
    assert edited.pk == post.pk and edited.status == Post.Status.SCHEDULED and edited.lease_until is None
    assert edited.scheduled_at == post.scheduled_at
    assert Post.objects.get(pk=post.pk).created_at == written  # an edit is not a new post: when it was written stays
    reschedule(edited, timezone.now() + timedelta(hours=3))
    assert Post.objects.get(pk=post.pk).created_at == written
    make_due(post)
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert [r["value"]["text"] for r in records(use_pds, account.did)] == ["final"]
    went_out = Post.objects.get(pk=post.pk)
    assert went_out.created_at == written and went_out.published_at > went_out.scheduled_at


def test_two_workers_and_a_hundred_due_posts_give_exactly_a_hundred_records(use_pds, user, channel, account, settings):
    settings.INTEGRATIONS_POST_RATES = {"user": (100, 60)}  # a hundred posts in a minute: more than users may
    posts = [schedule(user, channel, f"post {n}") for n in range(100)]
    make_due(*posts)
    barrier = threading.Barrier(2)
    results: list = []

    def worker():
        try:
            barrier.wait()
            results.append(publish_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sum(r[Post.Status.PUBLISHED] for r in results) == 100
    assert all(r[Post.Status.PUBLISHED] for r in results)  # both workers really took a share
    assert Post.objects.filter(status=Post.Status.PUBLISHED).count() == 100
    texts = sorted(r["value"]["text"] for r in records(use_pds, account.did))
    assert texts == sorted(f"post {n}" for n in range(100))  # each once


def test_a_post_due_while_its_channel_needs_reconnection_waits_and_goes_out_after(use_pds, user, channel, account):
    from integrations.bluesky import services

    post = schedule(user, channel, "patient")
    make_due(post)
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    assert publish_due() == {Post.Status.WAITING: 1}
    waiting = Post.objects.get(pk=post.pk)
    assert waiting.error_code == "channel_not_ready" and "Reconnect" in waiting.error_message
    assert waiting.attempts == 0  # nothing was sent
    services.connect(user, account.handle, account.app_passwords[0])
    assert publish_due() == {}  # looked at again when due again
    Post.objects.filter(pk=post.pk).update(next_attempt_at=timezone.now())
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert len(records(use_pds, account.did)) == 1


def test_a_post_due_while_the_integration_is_off_waits_for_it(use_pds, user, channel, account):
    post = schedule(user, channel, "switched off")
    make_due(post)
    switch = IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    assert publish_due() == {Post.Status.WAITING: 1}
    assert Post.objects.get(pk=post.pk).error_code == "integration_disabled"
    switch.value = "enabled"
    switch.save()
    Post.objects.filter(pk=post.pk).update(next_attempt_at=timezone.now())
    assert publish_due() == {Post.Status.PUBLISHED: 1}


def test_a_post_more_than_a_day_late_fails_as_missed_and_its_owner_decides(use_pds, user, channel, account, settings):
    late = schedule(user, channel, "late")
    blocked = schedule(user, channel, "blocked too long")
    Post.objects.filter(pk=late.pk).update(scheduled_at=timezone.now() - timedelta(hours=25))  # no worker ran
    Post.objects.filter(pk=blocked.pk).update(scheduled_at=timezone.now() - timedelta(hours=2))
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    assert publish_due() == {Post.Status.FAILED: 1, Post.Status.WAITING: 1}
    settings.INTEGRATIONS_SCHEDULE_MISSED_AFTER = 3600  # the blocked one is too late now
    Post.objects.filter(pk=blocked.pk).update(next_attempt_at=timezone.now())
    assert publish_due() == {Post.Status.FAILED: 1}
    for post in (late, blocked):
        missed = Post.objects.get(pk=post.pk)
        assert (missed.status, missed.error_code) == (Post.Status.FAILED, "missed")
        assert "Publish it now or delete it" in missed.error_message
    assert records(use_pds, account.did) == []
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.ACTIVE)
    assert publish(late.pk, retry=True).post.status == Post.Status.PUBLISHED  # the owner decided
    assert len(records(use_pds, account.did)) == 1


# --- the background worker ---------------------------------------------------------------------------------------
def run_worker() -> None:
    from io import StringIO

    from django.core.management import call_command

    call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0.1", stdout=StringIO())


def test_the_worker_publishes_a_post_scheduled_seconds_ahead_at_its_time(use_pds, user, channel, account):
    post = schedule(user, channel, "from the worker", seconds=3)
    run_worker()  # nothing is due yet
    assert Post.objects.get(pk=post.pk).status == Post.Status.SCHEDULED
    time.sleep(max(0.0, (post.scheduled_at - timezone.now()).total_seconds()))
    run_worker()
    published = Post.objects.get(pk=post.pk)
    assert published.status == Post.Status.PUBLISHED
    assert published.published_at - published.scheduled_at < timedelta(seconds=5)
    assert len(records(use_pds, account.did)) == 1


def test_the_recurring_task_publishes_due_posts_and_schedules_its_next_run(use_pds, user, channel, account, settings):
    from io import StringIO

    from django.core.management import call_command
    from django_tasks_db.models import DBTaskResult

    from integrations.tasks import PUBLISH_DUE_PATH, publish_due_posts

    settings.INTEGRATIONS_SCHEDULE_INTERVAL = 600
    post = schedule(user, channel, "picked up")
    make_due(post)
    call_command("bluesky_publish_due", "--schedule", stdout=StringIO())
    call_command("bluesky_publish_due", "--schedule", stdout=StringIO())  # once is enough
    assert DBTaskResult.objects.filter(status="READY", task_path=PUBLISH_DUE_PATH).count() == 1
    run_worker()
    finished = DBTaskResult.objects.filter(task_path=PUBLISH_DUE_PATH).exclude(finished_at=None).get()
    assert finished.return_value == {"published": 1}
    assert Post.objects.get(pk=post.pk).status == Post.Status.PUBLISHED
    pending = DBTaskResult.objects.filter(status="READY", task_path=PUBLISH_DUE_PATH).get()
    assert pending.run_after > timezone.now() + timedelta(minutes=5)
    assert publish_due_posts.name == "publish_due_posts"
    assert len(records(use_pds, account.did)) == 1


# --- the API -----------------------------------------------------------------------------------------------------
POSTS = "/api/v1/posts/"


def iso(seconds: float) -> str:
    return (timezone.now() + timedelta(seconds=seconds)).isoformat()


def test_the_api_schedules_edits_reschedules_and_cancels(api, use_pds, channel, account):
    from tests.api.test_api import assert_error

    body = {"channel": channel.pk, "parts": [{"text": "at noon", "link_card": None}], "scheduled_at": iso(3600)}
    created = api.post(POSTS, body, format="json")
    assert created.status_code == 201, created.content
    post = created.json()
    assert post["status"] == "scheduled" and post["attempts"] == 0 and post["parts"][0]["uri"] == ""
    assert post["scheduled_at"] is not None
    url = f"{POSTS}{post['id']}/"

    moved = api.patch(url, {"scheduled_at": iso(7200)}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["scheduled_at"] > post["scheduled_at"]
    edited = api.patch(url, {"parts": [{"text": "at two", "link_card": None}]}, format="json")
    assert edited.status_code == 200, edited.content
    assert edited.json()["id"] == post["id"] and edited.json()["parts"][0]["text"] == "at two"
    assert edited.json()["scheduled_at"] == moved.json()["scheduled_at"]
    assert_error(api.patch(url, {"scheduled_at": iso(-60)}, format="json"), 400, "scheduled_in_the_past")
    assert_error(api.patch(url, {"quote": "at://x/y/z"}, format="json"), 400, "invalid")
    assert_error(api.patch(url, {"scheduled_at": "2300-01-01T12:00:00Z"}, format="json"), 400, "scheduled_too_far")
    naive = api.patch(url, {"scheduled_at": "2099-01-01T12:00:00"}, format="json")
    assert_error(naive, 400, "invalid")

    assert api.post(f"{url}cancel/").status_code == 204
    assert api.get(url).json()["status"] == "cancelled"  # kept in the history
    assert_error(api.post(f"{url}cancel/"), 409, "post_not_scheduled")
    assert records(use_pds, account.did) == []


def test_the_api_refuses_a_past_time_and_changes_to_a_post_that_started(api, use_pds, channel):
    from tests.api.test_api import assert_error

    body = {"channel": channel.pk, "parts": [{"text": "yesterday"}], "scheduled_at": iso(-86400)}
    assert_error(api.post(POSTS, body, format="json"), 400, "scheduled_in_the_past")
    assert not Post.objects.exists()
    now = api.post(POSTS, {"channel": channel.pk, "parts": [{"text": "now", "link_card": None}]}, format="json")
    assert now.json()["status"] == "published" and now.json()["scheduled_at"] is None
    url = f"{POSTS}{now.json()['id']}/"
    assert_error(api.patch(url, {"scheduled_at": iso(3600)}, format="json"), 409, "post_not_scheduled")
    assert_error(api.post(f"{url}cancel/"), 409, "post_not_scheduled")


def test_deleting_a_scheduled_post_through_the_api_just_removes_it(api, use_pds, channel, account):
    body = {"channel": channel.pk, "parts": [{"text": "gone", "link_card": None}], "scheduled_at": iso(600)}
    post = api.post(POSTS, body, format="json").json()
    assert api.delete(f"{POSTS}{post['id']}/").status_code == 204
    assert not Post.objects.exists()
    assert publish_due(timezone.now() + timedelta(hours=1)) == {}
    assert records(use_pds, account.did) == []


# --- the web pages -----------------------------------------------------------------------------------------------
def test_the_composer_schedules_on_the_users_clock_and_refuses_a_past_time(alice_client, channel, use_pds, account):
    from zoneinfo import ZoneInfo

    from django.urls import reverse

    from tests.web.test_posts_web import body, errors_of

    berlin = ZoneInfo("Europe/Berlin")
    alice_client.cookies["skyport_tz"] = "Europe/Berlin"  # the browser's zone, as clock.js tells it
    clock = (timezone.now() + timedelta(days=2)).astimezone(berlin).replace(second=0, microsecond=0, tzinfo=None)
    data = body(channel, "see you then", scheduled_at=f"{clock:%Y-%m-%dT%H:%M}", time_zone="Europe/Berlin")
    response = alice_client.post(reverse("integrations:compose"), data)
    assert response.status_code == 302, errors_of(response)
    post = Post.objects.get()
    assert post.status == Post.Status.SCHEDULED
    assert post.scheduled_at == clock.replace(tzinfo=berlin)  # stored in UTC, meant in Berlin
    assert records(use_pds, account.did) == []

    listing = alice_client.get(reverse("integrations:post-list")).content.decode()
    assert "Scheduled on @" in listing
    assert f'data-scheduled-day="{clock:%Y-%m-%d}"' in listing and f"data-scheduled-time>{clock:%H:%M}<" in listing
    assert listing.count("Europe/Berlin") == 1 and "Times in Europe/Berlin" in listing  # the zone is named once
    assert not re.search(r"\b(CET|CEST|UTC)\b", listing)

    page = alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])).content.decode()
    assert f'data-next-scheduled="{post.pk}"' in page and "see you then" in page

    past = (timezone.now() - timedelta(hours=1)).astimezone(berlin)
    data = body(channel, "too late", scheduled_at=f"{past:%Y-%m-%dT%H:%M}", time_zone="Europe/Berlin")
    refused = alice_client.post(reverse("integrations:compose"), data)
    assert refused.status_code == 400
    assert "already passed" in errors_of(refused)
    assert Post.objects.count() == 1


def test_the_post_list_groups_scheduled_posts_by_day_and_cancels_them(alice_client, user, channel):
    from django.urls import reverse

    soon = schedule(user, channel, "tomorrow", seconds=86400)
    later = schedule(user, channel, "in 3 days", seconds=3 * 86400)
    listing = alice_client.get(reverse("integrations:post-list")).content.decode()
    assert listing.count("data-scheduled-day=") == 2
    assert listing.index("tomorrow") < listing.index("in 3 days")  # soonest first
    cancel = reverse("integrations:post-cancel", args=[soon.pk])
    asked = alice_client.post(cancel)  # unconfirmed: the question
    assert asked.status_code == 200 and "Cancel the post scheduled for" in asked.content.decode()
    assert Post.objects.get(pk=soon.pk).status == Post.Status.SCHEDULED
    response = alice_client.post(cancel, {"confirm": "yes"}, follow=True)
    page = response.content.decode()
    assert "Cancelled the post scheduled on @" in page and "Deleted" not in page
    assert list(Post.objects.filter(status="scheduled").values_list("pk", flat=True)) == [later.pk]
    history = page.split('id="history-heading"')[1]
    assert f'data-post="{soon.pk}"' in history and "tomorrow" in history and ">Cancelled<" in history


def test_the_owner_is_told_on_both_pages_when_a_due_post_waits_for_the_channel(alice_client, user, channel):
    from django.urls import reverse

    post = schedule(user, channel, "held back")
    make_due(post)
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    assert publish_due() == {Post.Status.WAITING: 1}
    page = alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])).content.decode()
    assert f'data-held="{post.pk}"' in page and "Reconnect" in page
    listing = alice_client.get(reverse("integrations:post-list")).content.decode()
    assert "held back" in listing and "cannot publish right now" in listing


# --- link cards of scheduled posts: read off the request, before the post's time ---------------------------------
@pytest.fixture
def card_page(settings, site):  # noqa: F811
    from tests.bluesky.posts.test_linkcards import OG_PAGE, png

    settings.INTEGRATIONS_LINK_CARDS = True
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png())
    return site


def schedule_with_card(user, channel, page_site, *more: str, seconds: float = 3600) -> Post:
    parts = [PartRequest(text=f"Read {page_site.url}/og"), *(PartRequest(text=t, link_card=None) for t in more)]
    return accept(user, channel, parts, scheduled_at=timezone.now() + timedelta(seconds=seconds))


def test_a_scheduled_posts_card_is_read_by_the_worker_and_the_post_replanned(
    use_pds, user, channel, account, card_page
):
    post = schedule_with_card(user, channel, card_page, "the reply")
    assert card_page.requests == []  # accepted without reading the page
    before = list(post.parts.order_by("index"))
    assert before[0].card["pending"] and before[0].card_note == CARD_PENDING_NOTE
    assert "embed" not in before[0].record

    run_worker()  # the task enqueued with the post reads the card now, long before the post's time
    assert card_page.requests == ["/og", "/img/card.png"]
    after = list(Post.objects.get(pk=post.pk).parts.order_by("index"))
    assert after[0].card["title"] == "Skyport & friends" and after[0].card_note == ""
    assert after[0].record["embed"]["external"]["title"] == "Skyport & friends"
    assert [p.rkey for p in after] == [p.rkey for p in before]  # the same keys and time
    assert after[0].expected_cid != before[0].expected_cid
    assert after[1].record["reply"]["parent"]["cid"] == after[0].expected_cid  # the thread follows its new root
    assert Post.objects.get(pk=post.pk).status == Post.Status.SCHEDULED

    make_due(post)
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    stored = {r["uri"]: r for r in records(use_pds, account.did)}
    published = list(Post.objects.get(pk=post.pk).parts.order_by("index"))
    assert [stored[p.uri]["cid"] for p in published] == [p.expected_cid for p in published]
    assert stored[published[0].uri]["value"]["embed"]["external"]["thumb"]["mimeType"] == "image/png"


def test_a_card_not_read_by_the_posts_time_is_read_on_its_first_attempt(use_pds, user, channel, account, card_page):
    post = schedule_with_card(user, channel, card_page)
    make_due(post)  # no worker ran before its time
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert card_page.requests == ["/og", "/img/card.png"]
    part = Post.objects.get(pk=post.pk).parts.get()
    [stored] = records(use_pds, account.did)
    assert stored["cid"] == part.expected_cid
    assert stored["value"]["embed"]["external"]["uri"] == f"{card_page.url}/og"


def test_a_pending_card_is_never_read_after_the_first_attempt(use_pds, user, channel, account, card_page):
    """An attempt that died before the card was read: the next one keeps the plan as it is, without the card."""
    post = schedule_with_card(user, channel, card_page)
    planned = post.parts.get()
    Post.objects.filter(pk=post.pk).update(
        status=Post.Status.WAITING, attempts=1, next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert card_page.requests == []
    part = Post.objects.get(pk=post.pk).parts.get()
    assert (part.rkey, part.expected_cid) == (planned.rkey, planned.expected_cid)
    assert part.card is None and part.card_note == CARD_LATE_NOTE
    [stored] = records(use_pds, account.did)
    assert stored["cid"] == planned.expected_cid and "embed" not in stored["value"]


def test_the_card_task_leaves_a_post_that_started_alone(use_pds, user, channel, card_page):
    post = schedule_with_card(user, channel, card_page)
    planned = post.parts.get()
    Post.objects.filter(pk=post.pk).update(status=Post.Status.PUBLISHING, attempts=1)
    assert build_pending_cards(post.pk) == 0
    assert card_page.requests == []
    part = Post.objects.get(pk=post.pk).parts.get()
    assert (part.card, part.expected_cid) == (planned.card, planned.expected_cid)


def test_a_card_read_while_the_post_was_edited_is_not_applied_and_its_thumbnail_not_kept(
    use_pds, user, channel, card_page, monkeypatch
):
    """The page is read outside the row lock: an edit meanwhile wins, and the card read for the old text goes."""
    from integrations.models import Media

    post = schedule_with_card(user, channel, card_page)
    reading = cards._read_cards

    def read_then_edit(owner, parts):
        cards = reading(owner, parts)
        edit(post, [PartRequest(text="no link any more", link_card=None)])
        return cards

    monkeypatch.setattr(cards, "_read_cards", read_then_edit)
    assert build_pending_cards(post.pk) == 0
    part = Post.objects.get(pk=post.pk).parts.get()
    assert part.text == "no link any more" and part.card is None and "embed" not in part.record
    assert not Media.objects.exists()


def test_the_api_accepts_a_scheduled_post_with_a_link_at_once_and_says_the_card_is_pending(
    api, use_pds, channel, card_page
):
    body = {"channel": channel.pk, "parts": [{"text": f"Read {card_page.url}/og"}], "scheduled_at": iso(3600)}
    created = api.post(POSTS, body, format="json")
    assert created.status_code == 201, created.content
    [part] = created.json()["parts"]
    assert part["card"] is None and part["card_note"] == CARD_PENDING_NOTE
    assert card_page.requests == []
