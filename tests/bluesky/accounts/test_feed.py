"""The channel's feed (`integrations.bluesky.accounts.feed`): its own posts read from its repository, through the API
and on the channel page, against the real local PDS (posts written there directly, as any other client would)."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations.bluesky import services
from integrations.bluesky.accounts import feed
from integrations.bluesky.posts.plans import PartInput
from integrations.bluesky.posts.store import create_post
from integrations.bluesky.posts.submit import publish
from integrations.exceptions import InvalidCursor
from integrations.models import Channel
from tests.api.test_api import assert_error

pytestmark = [pytest.mark.pds, pytest.mark.django_db]


def posts_url(pk: int) -> str:
    return f"/api/v1/channels/{pk}/posts/"


@pytest.fixture
def alice_api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def write(pds, account, record: dict, *, validate: bool = True) -> dict:
    """Create a post directly on the PDS, bypassing Skyport; returns its strong reference."""
    body = {"repo": account.did, "collection": "app.bsky.feed.post", "record": record, "validate": validate}
    response = pds.xrpc("POST", "com.atproto.repo.createRecord", token=account.access_jwt, json=body)
    assert response.status_code == 200, response.text
    return {"uri": response.json()["uri"], "cid": response.json()["cid"]}


def post(text: str, **fields) -> dict:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": now, **fields}


@pytest.fixture
def timeline(use_pds, channel, user, account) -> dict[str, dict]:
    """Four posts, oldest first: one written elsewhere, a reply to it, one published by Skyport, a quote of it."""
    first = write(use_pds, account, post("written elsewhere"))
    reply = write(use_pds, account, post("a reply", reply={"root": first, "parent": first}))
    ours = create_post(user, channel, [PartInput(text="from Skyport", langs=["en"])])
    assert publish(ours.pk).error is None
    part = ours.parts.get()
    published = {"uri": part.uri, "cid": part.cid}
    quote = write(use_pds, account, post("a quote", embed={"$type": "app.bsky.embed.record", "record": published}))
    return {"first": first, "reply": reply, "ours": published, "quote": quote}


def test_the_api_lists_every_post_newest_first_and_marks_skyports_own(alice_api, channel, timeline, account):
    response = alice_api.get(posts_url(channel.pk))
    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["text"] for item in body["posts"]] == ["a quote", "from Skyport", "a reply", "written elsewhere"]
    assert body["cursor"] is None
    by_text = {item["text"]: item for item in body["posts"]}
    assert [t for t, item in by_text.items() if item["published_by_skyport"]] == ["from Skyport"]
    assert [t for t, item in by_text.items() if item["is_reply"]] == ["a reply"]
    assert [t for t, item in by_text.items() if item["is_quote"]] == ["a quote"]
    assert not any(item["has_images"] for item in body["posts"])
    for name, item in zip(("quote", "ours", "reply", "first"), body["posts"], strict=True):
        assert (item["uri"], item["cid"]) == (timeline[name]["uri"], timeline[name]["cid"])
        rkey = item["uri"].rsplit("/", 1)[1]
        assert item["url"] == f"https://bsky.app/profile/{account.did}/post/{rkey}"
        assert abs((datetime.fromisoformat(item["created_at"]) - datetime.now(UTC)).total_seconds()) < 120


def test_pages_follow_the_cursor_to_the_end(alice_api, channel, timeline):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = alice_api.get(posts_url(channel.pk), params).json()
        pages += 1
        seen += [item["text"] for item in body["posts"]]
        cursor = body["cursor"]
        if cursor is None:
            break
        assert len(body["posts"]) == 3
    assert pages == 2
    assert seen == ["a quote", "from Skyport", "a reply", "written elsewhere"]


def test_an_exactly_full_last_page_is_followed_by_an_empty_one(alice_api, channel, timeline):
    first = alice_api.get(posts_url(channel.pk), {"limit": 4}).json()
    assert len(first["posts"]) == 4 and first["cursor"]
    rest = alice_api.get(posts_url(channel.pk), {"limit": 4, "cursor": first["cursor"]}).json()
    assert rest == {"posts": [], "cursor": None}


def test_records_that_break_the_lexicon_are_listed_without_breaking_the_list(use_pds, alice_api, channel, account):
    write(use_pds, account, post("fine"))
    write(use_pds, account, {"$type": "app.bsky.feed.post", "text": 42, "createdAt": "yesterday"}, validate=False)
    odd = {"$type": "app.bsky.feed.post", "text": "x\x00y" + "z" * 5000, "createdAt": 5, "embed": "no", "reply": 3}
    write(use_pds, account, odd, validate=False)
    write(
        use_pds,
        account,
        {"$type": "app.bsky.feed.post", "text": "naive", "createdAt": "2024-01-01T00:00:00"},
        validate=False,
    )
    images = {
        "$type": "app.bsky.embed.recordWithMedia",
        "record": {"record": {"uri": "at://x", "cid": "y"}},
        "media": {"$type": "app.bsky.embed.images", "images": []},
    }
    write(use_pds, account, post("with media", embed=images), validate=False)

    response = alice_api.get(posts_url(channel.pk))
    assert response.status_code == 200, response.content
    media, naive, long, number, fine = response.json()["posts"]
    assert (media["is_quote"], media["has_images"]) == (True, True)
    assert naive["created_at"] is None  # a time without a zone is not a time we can show
    assert long["text"] == "xy" + "z" * (feed.MAX_TEXT_LENGTH - 2)
    assert (long["created_at"], long["is_reply"], long["is_quote"]) == (None, False, False)
    assert (number["text"], number["created_at"]) == ("", None)
    assert fine["text"] == "fine" and fine["created_at"]


@pytest.mark.parametrize("cursor", ["<script>", "a b", "x" * 513, "../../etc", "é"])
def test_a_malformed_cursor_is_a_400(alice_api, channel, cursor):
    response = alice_api.get(posts_url(channel.pk), {"cursor": cursor})
    assert_error(response, 400, "invalid_cursor")
    with pytest.raises(InvalidCursor):
        feed.channel_feed(channel, cursor)


def test_a_limit_out_of_range_is_a_400(alice_api, channel):
    for limit in (0, 101, "ten"):
        assert_error(alice_api.get(posts_url(channel.pk), {"limit": limit}), 400, "invalid")


def test_another_users_channel_is_a_404(alice_api, channel, other_user):
    Channel.objects.filter(pk=channel.pk).update(user=other_user)
    assert_error(alice_api.get(posts_url(channel.pk)), 404, "not_found")


def test_a_channel_without_a_session_is_refused_with_the_apps_error(alice_api, channel):
    services.disconnect(channel)
    assert_error(alice_api.get(posts_url(channel.pk)), 409, "no_session")


def test_an_unreachable_pds_answers_in_the_error_shape(alice_api, channel):
    Channel.objects.filter(pk=channel.pk).update(pds_endpoint="http://127.0.0.1:9")
    response = alice_api.get(posts_url(channel.pk))
    assert response.status_code in (502, 503), response.content
    assert response.json()["error"]["code"]


def test_the_schema_documents_the_endpoint(alice_api):
    schema = alice_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/channels/{id}/posts/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"id", "cursor", "limit"}
    assert {"200", "400", "404", "409"} <= set(operation["responses"])


# --- the channel page -------------------------------------------------------------------------------------------
def test_the_channel_page_shows_recent_posts_with_markers_and_links(alice_client, channel, timeline, account):
    page = alice_client.get(reverse("integrations:channel-detail", args=[channel.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Recent posts" in html
    assert html.index("a quote") < html.index("from Skyport") < html.index("a reply") < html.index("written elsewhere")
    assert html.count("Published with Skyport") == 1
    assert ">Reply<" in html and ">Quote<" in html
    rkey = timeline["first"]["uri"].rsplit("/", 1)[1]
    assert f'href="https://bsky.app/profile/{account.did}/post/{rkey}"' in html


def test_the_channel_page_links_to_older_posts(use_pds, alice_client, channel, account, monkeypatch):
    for text in ("one", "two", "three"):
        write(use_pds, account, post(text))
    monkeypatch.setattr(feed, "DEFAULT_LIMIT", 2)
    url = reverse("integrations:channel-detail", args=[channel.pk])
    html = alice_client.get(url).content.decode()
    assert "three" in html and "two" in html and "one" not in html
    cursor = feed.channel_feed(channel, None, 2).cursor
    assert f'href="?cursor={cursor}#posts"' in html
    older = alice_client.get(url, {"cursor": cursor}).content.decode()
    assert "one" in older and "three" not in older and "Newest posts" in older
    bad = alice_client.get(url, {"cursor": "<script>"})
    assert bad.status_code == 200 and "That page link is not valid" in bad.content.decode()


def test_the_channel_page_says_so_when_the_pds_cannot_be_reached(alice_client, channel):
    Channel.objects.filter(pk=channel.pk).update(pds_endpoint="http://127.0.0.1:9")
    page = alice_client.get(reverse("integrations:channel-detail", args=[channel.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Recent posts" in html and "The posts could not be loaded" in html
    assert "Events" in html  # the rest of the page is there


def test_a_disconnected_channels_page_renders_without_posts(alice_client, channel):
    services.disconnect(channel)
    page = alice_client.get(reverse("integrations:channel-detail", args=[channel.pk]))
    assert page.status_code == 200
    assert "The posts could not be loaded" in page.content.decode()


def test_a_created_at_past_year_9999_in_utc_never_breaks_the_page_or_the_api(
    use_pds, alice_api, alice_client, channel, account, caplog
):
    """`9999-12-31T23:59:00-00:01` is year 10000 in UTC: shown without a time, logged once."""
    write(use_pds, account, post("fine"))
    late = {"$type": "app.bsky.feed.post", "text": "from the far future", "createdAt": "9999-12-31T23:59:00-00:01"}
    far = write(use_pds, account, late, validate=False)
    caplog.set_level("WARNING", logger="integrations.bluesky.accounts.feed")

    response = alice_api.get(posts_url(channel.pk))
    assert response.status_code == 200, response.content
    future, fine = response.json()["posts"]
    assert (future["text"], future["created_at"]) == ("from the far future", None)
    assert fine["created_at"]

    page = alice_client.get(reverse("integrations:channel-detail", args=[channel.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "from the far future" in html and "time unknown" in html
    logged = [r for r in caplog.records if "createdAt" in r.getMessage()]
    assert len(logged) == 1 and far["uri"] in logged[0].getMessage()
