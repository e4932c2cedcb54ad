"""Keyset pages of every list, in the API and on the pages: a cursor leads on without repeats or gaps, also while
posts are added, costs the same however deep, and one that is not a cursor of the list is a clear 400."""

import base64
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations import pagination
from integrations.exceptions import InvalidCursor
from integrations.models import Channel, ChannelEvent, Post, PostPart
from integrations.security import crypto

pytestmark = pytest.mark.django_db

POSTS = "/api/v1/posts/"
CHANNELS = "/api/v1/channels/"


def make_channels(user, count: int, start: int = 0, **fields) -> list[Channel]:
    return Channel.objects.bulk_create(
        Channel(
            user=user, did=f"did:plc:page{n:020d}", handle=f"page{n:04d}.test", service_url="https://pds.test", **fields
        )
        for n in range(start, start + count)
    )


def make_posts(user, channel, count: int, *, at=None, **fields) -> list[Post]:
    """`count` published posts, one second apart (the newest last), each with one part; `at`: all at that time."""
    now = timezone.now()
    posts = Post.objects.bulk_create(
        Post(
            user=user,
            channel=channel,
            status=fields.get("status", Post.Status.PUBLISHED),
            created_at=at or now - timedelta(seconds=count - n),
            scheduled_at=fields.get("scheduled_at"),
        )
        for n in range(count)
    )
    PostPart.objects.bulk_create(
        PostPart(post=post, index=0, text=f"post {post.pk}", rkey=f"3k{post.pk:011d}", record={}, expected_cid="c")
        for post in posts
    )
    return posts


@pytest.fixture
def alice_channel(user):
    return make_channels(user, 1)[0]


def walk(api, url: str, key: str, limit: int, between=None) -> list[int]:
    """Every id of a list, page after page; `between(page_number)` runs after each page."""
    seen, cursor, number = [], None, 0
    while True:
        response = api.get(url, {"limit": limit, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {key, "cursor"}
        seen += [row["id"] for row in body[key]]
        cursor, number = body["cursor"], number + 1
        if between:
            between(number)
        if cursor is None:
            return seen
        assert number < 100


# --- the API -------------------------------------------------------------------------------------------------------
def test_posts_come_a_page_at_a_time_newest_first_and_the_cursor_leads_to_every_post_once(api, user, alice_channel):
    posts = make_posts(user, alice_channel, 23)
    first = api.get(POSTS).json()
    assert len(first["posts"]) == 23 and first["cursor"] is None  # 25 a page by default
    seen = walk(api, POSTS, "posts", limit=5)
    assert seen == [post.pk for post in reversed(posts)]


def test_posts_added_while_paging_neither_repeat_nor_skip_a_post(api, user, alice_channel):
    posts = make_posts(user, alice_channel, 30)

    def more_arrive(page_number: int) -> None:
        make_posts(user, alice_channel, 3, at=timezone.now() + timedelta(minutes=page_number))

    seen = walk(api, POSTS, "posts", limit=7, between=more_arrive)
    assert seen == [post.pk for post in reversed(posts)]  # the older posts, each once; the new ones come first


def test_posts_written_at_the_same_instant_are_all_listed_once(api, user, alice_channel):
    posts = make_posts(user, alice_channel, 12, at=timezone.now())
    assert walk(api, POSTS, "posts", limit=5) == sorted((post.pk for post in posts), reverse=True)


def test_channels_and_events_are_paged_the_same_way(api, user, settings):
    channels = make_channels(user, 7)
    assert walk(api, CHANNELS, "channels", limit=3) == [c.pk for c in sorted(channels, key=lambda c: c.handle)]
    settings.INTEGRATIONS_EVENTS_SHOWN = 4
    for n in range(10):
        channels[0].record_event(ChannelEvent.Kind.REFRESHED, detail=f"event {n}")
    events = f"{CHANNELS}{channels[0].pk}/events/"
    first = api.get(events).json()
    assert [e["detail"] for e in first["events"]] == ["event 9", "event 8", "event 7", "event 6"]
    rest = api.get(events, {"cursor": first["cursor"], "limit": 100}).json()
    assert [e["detail"] for e in rest["events"]] == [f"event {n}" for n in range(5, -1, -1)]
    assert rest["cursor"] is None


def forged(*values) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


NOT_CURSORS = [
    "not-a-cursor",
    "<script>",
    "a" * 2000,
    forged("2026-01-01T00:00:00+00:00"),  # one value short
    forged(True, 7),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
]
NOT_POST_CURSORS = [
    forged("2026-01-01T00:00:00+00:00", "7"),  # the id as a string
    forged("2026-01-01T00:00:00", 7),  # a time without its zone
    forged("yesterday", 7),
]
NOT_CHANNEL_CURSORS = [forged(7, 7), forged("a.test", "7")]


@pytest.mark.parametrize(
    ("url", "cursor"),
    [(url, cursor) for url in (POSTS, CHANNELS) for cursor in NOT_CURSORS]
    + [(POSTS, cursor) for cursor in NOT_POST_CURSORS]
    + [(CHANNELS, cursor) for cursor in NOT_CHANNEL_CURSORS],
)
def test_a_cursor_that_is_not_one_of_the_lists_is_a_400_in_the_apis_error_shape(api, user, alice_channel, url, cursor):
    response = api.get(url, {"cursor": cursor})
    assert response.status_code == 400
    error = response.json()["error"]
    if len(cursor) > pagination.MAX_CURSOR_LENGTH:
        assert error["code"] == "invalid" and "cursor" in error["fields"]
    else:
        assert error["code"] == "invalid_cursor"
        assert error["message"] == "That page link is not valid. Start again from the first page."


def test_a_limit_out_of_range_is_a_400(api):
    for limit in (0, 101, "ten"):
        response = api.get(POSTS, {"limit": limit})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_the_schema_documents_limit_cursor_and_the_page(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    for path, key in ((POSTS, "posts"), (CHANNELS, "channels"), ("/api/v1/channels/{id}/events/", "events")):
        operation = schema["paths"][path]["get"]
        assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} >= {"limit", "cursor"}
        page = operation["responses"]["200"]["content"]["application/json"]["schema"]
        ref = page["$ref"].rsplit("/", 1)[1]
        properties = schema["components"]["schemas"][ref]["properties"]
        assert set(properties) == {key, "cursor"} and properties[key]["type"] == "array"


def test_a_page_of_posts_costs_the_same_queries_and_no_offset_however_deep(api, user, alice_channel):
    make_posts(user, alice_channel, 60)
    with CaptureQueriesContext(connection) as first:
        body = api.get(POSTS, {"limit": 10}).json()
    cursor = body["cursor"]
    for _ in range(4):
        cursor = api.get(POSTS, {"limit": 10, "cursor": cursor}).json()["cursor"]
    with CaptureQueriesContext(connection) as deep:
        assert len(api.get(POSTS, {"limit": 10, "cursor": cursor}).json()["posts"]) == 10
    assert len(deep) == len(first)
    assert not any("OFFSET" in query["sql"].upper() for query in deep.captured_queries)


# --- the pages -----------------------------------------------------------------------------------------------------
def test_the_post_list_goes_on_by_cursor_and_shows_the_next_scheduled_posts_a_page_at_a_time(
    alice_client, user, alice_channel
):
    done = make_posts(user, alice_channel, 45)
    soon = timezone.now() + timedelta(days=1)
    scheduled = [
        make_posts(user, alice_channel, 1, status="scheduled", scheduled_at=soon + timedelta(minutes=n))[0]
        for n in range(25)
    ]
    first = alice_client.get(reverse("integrations:post-list")).content.decode()
    assert first.count('data-post="') == 20 + 20  # the next 20 scheduled, the 20 newest others
    assert "25 posts scheduled in all" in first
    assert f'data-post="{scheduled[19].pk}"' in first and f'data-post="{scheduled[20].pk}"' not in first
    assert f'data-post="{done[-1].pk}"' in first and f'data-post="{done[-21].pk}"' not in first

    shown = []
    page = first
    while 'href="?cursor=' in page:
        cursor = page.split('href="?cursor=', 1)[1].split('"', 1)[0]
        page = alice_client.get(reverse("integrations:post-list"), {"cursor": cursor}).content.decode()
        shown += [int(pk) for pk in page.split('data-post="')[1:] for pk in [pk.split('"', 1)[0]]]
    assert shown == [post.pk for post in reversed(done[:25])]

    later_link = first.split('href="?scheduled=', 1)[1].split('"', 1)[0]
    later = alice_client.get(reverse("integrations:post-list"), {"scheduled": later_link}).content.decode()
    assert [int(p.split('"', 1)[0]) for p in later.split('data-post="')[1:]] == [p.pk for p in scheduled[20:]]


def history_ids(page: str) -> list[int]:
    """The posts of a /app/posts page's history list, in their order (the scheduled ones are listed before it)."""
    history = page.split('id="history-heading"', 1)[-1] if 'id="history-heading"' in page else page
    return [int(pk.split('"', 1)[0]) for pk in history.split('data-post="')[1:]]


def test_the_history_goes_on_by_cursor_in_its_own_order_cancelled_posts_included_without_repeats_or_gaps(
    alice_client, user, alice_channel
):
    """/app/posts sorts the history by when each post went out, was cancelled or was due, else when it was written
    (not by when it was written): the cursor follows that order, ties included, and a post cancelled or published
    while someone pages neither repeats nor pushes another one out."""
    import random

    rng = random.Random(17)
    now = timezone.now()

    def ago(hours: float):
        return now - timedelta(hours=hours)

    made = []
    for n in range(48):  # written in one order (created_at), listed in another
        kind = n % 4
        post = Post.objects.create(
            user=user,
            channel=alice_channel,
            status=[Post.Status.PUBLISHED, Post.Status.CANCELLED, Post.Status.FAILED, Post.Status.FAILED][kind],
            created_at=ago(500 - n),
            scheduled_at=ago(rng.uniform(1, 400)) if kind in (1, 2) else None,
        )
        if kind == 0:
            post.published_at = ago(rng.uniform(1, 400)) if n % 8 else ago(200)  # some at the same instant
        elif kind == 1:
            post.cancelled_at = ago(rng.uniform(1, 400))
        post.save()
        PostPart.objects.create(post=post, index=0, text=f"post {post.pk}", rkey=f"3k{post.pk:011d}", record={})
        made.append(post)
    upcoming = make_posts(user, alice_channel, 3, status="scheduled", scheduled_at=now + timedelta(days=2))
    PostPart.objects.filter(post__in=upcoming).update(record={})

    def history_at(post):
        return post.published_at or post.cancelled_at or post.scheduled_at or post.created_at

    expected = [p.pk for p in sorted(made, key=lambda p: (history_at(p), p.pk), reverse=True)]
    assert expected != [p.pk for p in sorted(made, key=lambda p: (p.created_at, p.pk), reverse=True)]

    url = reverse("integrations:post-list")
    page = alice_client.get(url).content.decode()
    seen = history_ids(page)
    assert seen == expected[:20]
    assert not set(seen) & {p.pk for p in upcoming}
    while 'href="?cursor=' in page:
        cursor = page.split('href="?cursor=', 1)[1].split('"', 1)[0]
        # Meanwhile a scheduled post is cancelled: it goes to the top of the history, not into the pages after.
        if upcoming:
            cancelled = upcoming.pop()
            response = alice_client.post(reverse("integrations:post-cancel", args=[cancelled.pk]), {"confirm": "yes"})
            assert response.status_code == 302
            assert Post.objects.get(pk=cancelled.pk).status == Post.Status.CANCELLED
        page = alice_client.get(url, {"cursor": cursor}).content.decode()
        seen += history_ids(page)
    assert seen == expected  # every post once, in the history's order
    just_cancelled = Post.objects.filter(cancelled_at__gt=now).order_by("-cancelled_at")
    assert len(just_cancelled) == 2
    top = history_ids(alice_client.get(url).content.decode())
    assert top[:2] == [p.pk for p in just_cancelled]  # the latest cancellation first


def test_a_bad_page_link_goes_back_to_the_first_page_and_says_so(alice_client, user, alice_channel):
    for view, name in (("integrations:post-list", "cursor"), ("integrations:channel-list", "disconnected")):
        response = alice_client.get(reverse(view), {name: "garbage!"}, follow=True)
        assert response.redirect_chain[-1][0] == reverse(view)
        assert "That page link is not valid" in response.content.decode()


def test_the_post_list_reads_no_token(alice_client, user, alice_channel, monkeypatch):
    Channel.objects.filter(pk=alice_channel.pk).update(refresh_jwt=crypto.encrypt("a-refresh-token"))
    make_posts(user, alice_channel, 5)

    def refuse(value):
        raise AssertionError("a token was decrypted for the post list")

    monkeypatch.setattr(crypto, "decrypt", refuse)
    page = alice_client.get(reverse("integrations:post-list")).content.decode()
    assert page.count('data-post="') == 5


def test_the_channel_list_goes_on_by_cursor(alice_client, user):
    channels = make_channels(user, 57)
    first = alice_client.get(reverse("integrations:channel-list")).content.decode()
    assert first.count('data-channel="') == 50
    cursor = first.split('href="?cursor=', 1)[1].split('"', 1)[0]
    second = alice_client.get(reverse("integrations:channel-list"), {"cursor": cursor}).content.decode()
    assert [int(p.split('"', 1)[0]) for p in second.split('data-channel="')[1:]] == [c.pk for c in channels[50:]]


def test_a_problem_is_told_once_even_on_a_channel_of_another_page(alice_client, user):
    make_channels(user, 55)
    far = Channel.objects.get(handle="page0054.test")
    Channel.objects.filter(pk=far.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    first = alice_client.get(reverse("integrations:channel-list")).content.decode()
    assert "@page0054.test: Needs reconnection" in first
    assert (
        "@page0054.test: Needs reconnection"
        not in alice_client.get(reverse("integrations:channel-list")).content.decode()
    )


def test_a_cursor_of_another_list_is_refused(user, alice_channel):
    make_channels(user, 3, start=10)
    page = pagination.page(Channel.objects.all(), ("handle", "pk"), limit=2)
    with pytest.raises(InvalidCursor):  # a channels cursor on the posts' order
        pagination.page(Post.objects.all(), ("-created_at", "-pk"), page.cursor)
