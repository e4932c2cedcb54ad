"""The publishing API (`/api/v1/posts/`, `/api/v1/media/`) against the real local PDS."""

import pytest
from rest_framework.test import APIClient

from integrations.models import Channel, IntegrationOption, Post
from tests.api.test_api import assert_error
from tests.bluesky.posts.test_linkcards import site  # noqa: F401 (a fixture)
from tests.bluesky.posts.test_publishing import records

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

POSTS = "/api/v1/posts/"


def publish(api, channel, *texts, **extra):
    body = {"channel": channel.pk, "parts": [{"text": text} for text in texts], **extra}
    return api.post(POSTS, body, format="json")


def test_a_post_with_links_mentions_and_tags_is_published_with_its_facets(api, channel, use_pds, account):
    text = f"Hello @{account.handle}! Read https://example.com/a/rather/long/path/to/something #skyport"
    response = publish(api, channel, text)
    assert response.status_code == 201, response.content
    post = response.json()
    assert post["status"] == "published" and post["error"] is None
    [part] = post["parts"]
    assert part["uri"].startswith(f"at://{account.did}/app.bsky.feed.post/")
    assert part["url"] == f"https://bsky.app/profile/{account.did}/post/{part['uri'].rsplit('/', 1)[1]}"
    [stored] = records(use_pds, account.did)
    value = stored["value"]
    assert "https://example.com/a/rather/long/path/to/something" not in value["text"]  # shortened as bsky.app does
    kinds = {feature["$type"].rsplit("#", 1)[1]: feature for f in value["facets"] for feature in f["features"]}
    assert kinds["link"]["uri"] == "https://example.com/a/rather/long/path/to/something"
    assert kinds["mention"]["did"] == account.did
    assert kinds["tag"]["tag"] == "skyport"
    raw = value["text"].encode()
    for facet in value["facets"]:
        sliced = raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode()
        assert sliced.startswith(("@", "#", "example.com"))
    assert value["langs"]  # a default language, from the request or the settings


def test_a_thread_and_a_reply_to_it_by_its_bsky_app_address(api, channel, use_pds, account):
    first = publish(api, channel, "root", "second").json()
    reply = publish(api, channel, "a reply", reply_to=first["parts"][1]["url"]).json()
    assert reply["status"] == "published"
    by_uri = {r["uri"]: r["value"] for r in records(use_pds, account.did)}
    value = by_uri[reply["parts"][0]["uri"]]
    assert value["reply"]["parent"]["uri"] == first["parts"][1]["uri"]
    assert value["reply"]["root"]["uri"] == first["parts"][0]["uri"]  # the thread's root, not the parent
    quoted = publish(api, channel, "look", quote=first["parts"][0]["uri"]).json()
    embed = (
        by_uri.get(quoted["parts"][0]["uri"])
        or {r["uri"]: r["value"] for r in records(use_pds, account.did)}[quoted["parts"][0]["uri"]]
    )
    assert embed["embed"]["record"] == {"uri": first["parts"][0]["uri"], "cid": first["parts"][0]["cid"]}


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"parts": [{"text": "a" * 301}]}, "post_too_long", "301"),
        ({"parts": [{"text": "é" * 1501 + "x"}]}, "post_too_long", "3,00"),
        ({"parts": [{"text": "x"}] * 26}, "too_many_parts", "25"),
        ({"parts": [{"text": ""}]}, "empty_post", "Write something"),
        ({"parts": [{"text": "hi"}], "reply_to": "https://example.com/not/a/post"}, "invalid_reference", "bsky.app"),
        ({"parts": [{"text": "hi", "langs": ["en", "de", "fr", "es"]}]}, "invalid_language", "3"),
        ({"parts": [{"text": "hi", "images": [{"media": 999999, "alt": "x"}]}]}, "media_not_found", "uploads"),
    ],
)
def test_what_cannot_be_published_is_refused_with_a_code_and_nothing_is_stored(
    api, channel, use_pds, account, body, code, words
):
    response = api.post(POSTS, {"channel": channel.pk, **body}, format="json")
    error = assert_error(response, 400, code)
    assert words in error["message"]
    assert not Post.objects.exists()
    assert records(use_pds, account.did) == []


def test_a_channel_that_cannot_publish_is_refused_and_a_post_waits_while_bluesky_is_off(api, channel, use_pds, account):
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    assert_error(publish(api, channel, "hi"), 409, "channel_not_ready")
    assert not Post.objects.exists()
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.ACTIVE)
    IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    response = publish(api, channel, "hi")  # the same behaviour as the web: accepted, and it waits
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "waiting" and response.json()["error"]["code"] == "integration_disabled"
    assert records(use_pds, account.did) == []


def test_posts_are_private_to_their_owner(api, channel, use_pds, django_user_model):
    post = publish(api, channel, "mine").json()
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user("mallory", password="pw-mallory-123"))
    assert other.get(POSTS).json() == {"posts": [], "cursor": None}
    assert_error(other.get(f"{POSTS}{post['id']}/"), 404, "not_found")
    assert_error(other.delete(f"{POSTS}{post['id']}/"), 404, "not_found")
    assert_error(publish(other, channel, "in your name"), 400, "invalid")


def test_list_retry_and_delete(api, channel, use_pds, account):
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.ACTIVE)
    first = publish(api, channel, "one").json()
    second = publish(api, channel, "two").json()
    assert [p["id"] for p in api.get(POSTS).json()["posts"]] == [second["id"], first["id"]]
    again = api.post(f"{POSTS}{first['id']}/publish/")  # already published: nothing to do, nothing written twice
    assert again.status_code == 200 and again.json()["status"] == "published"
    assert len(records(use_pds, account.did)) == 2
    assert api.delete(f"{POSTS}{first['id']}/").status_code == 204
    assert [r["value"]["text"] for r in records(use_pds, account.did)] == ["two"]


def png_bytes(width=64, height=48) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_image_post_uploads_the_prepared_bytes_with_alt_text_and_aspect_ratio(api, channel, use_pds, account):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = api.post("/api/v1/media/", {"file": SimpleUploadedFile("photo.jpg", png_bytes())}, format="multipart")
    assert upload.status_code == 201, upload.content
    media = upload.json()
    assert (media["mime"], media["width"], media["height"]) == ("image/png", 64, 48)  # by content, not by name
    missing_alt = api.post(
        POSTS, {"channel": channel.pk, "parts": [{"text": "pic", "images": [{"media": media["id"]}]}]}, format="json"
    )
    assert_error(missing_alt, 400, "alt_text_required")
    body = {
        "channel": channel.pk,
        "parts": [{"text": "pic", "images": [{"media": media["id"], "alt": "A pink square"}]}],
    }
    post = api.post(POSTS, body, format="json").json()
    assert post["status"] == "published", post
    [stored] = records(use_pds, account.did)
    [image] = stored["value"]["embed"]["images"]
    assert image["alt"] == "A pink square"
    assert image["aspectRatio"] == {"width": 64, "height": 48}
    assert image["image"]["mimeType"] == "image/png"
    blob = use_pds.xrpc(
        "GET", "com.atproto.sync.getBlob", params={"did": account.did, "cid": image["image"]["ref"]["$link"]}
    )
    assert blob.status_code == 200 and blob.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_upload_that_is_not_an_image_is_refused(api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fake = SimpleUploadedFile("cat.png", b"<html>not an image</html>", content_type="image/png")
    assert_error(api.post("/api/v1/media/", {"file": fake}, format="multipart"), 400, "unsupported_image")


def test_posting_too_often_is_refused_with_429_saying_when_and_nothing_is_stored(
    api, channel, use_pds, account, settings
):
    settings.INTEGRATIONS_POST_RATES = {"user": (2, 60)}
    assert publish(api, channel, "one").status_code == 201
    assert publish(api, channel, "two").status_code == 201
    response = publish(api, channel, "three")
    error = assert_error(response, 429, "posts_throttled")
    assert 1 <= error["retry_after"] <= 60 and response["Retry-After"] == str(error["retry_after"])
    assert error["message"].startswith("You have sent many posts in a short time. Try again in ")
    assert not Post.objects.filter(parts__text="three").exists()
    assert len(records(use_pds, account.did)) == 2


def test_the_daily_post_limit_holds_beside_the_minute_one_and_says_the_longer_wait(
    api, channel, use_pds, account, settings
):
    settings.INTEGRATIONS_POST_RATES = {"user": (10, 60), "user_day": (2, 86400)}
    assert publish(api, channel, "one").status_code == 201
    assert publish(api, channel, "two").status_code == 201
    error = assert_error(publish(api, channel, "three"), 429, "posts_throttled")
    assert error["retry_after"] > 60  # the day's window, not the minute's
    assert len(records(use_pds, account.did)) == 2


def test_a_post_is_counted_against_all_its_limits_in_one_statement(channel, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations.bluesky.posts.accept import PartRequest, accept

    settings.INTEGRATIONS_POST_RATES = {"user": (10, 60), "user_day": (100, 86400)}
    with CaptureQueriesContext(connection) as queries:
        accept(channel.user, channel, [PartRequest(text="counted")])
    counters = [query["sql"] for query in queries.captured_queries if "integrations_ratecounter" in query["sql"]]
    assert len(counters) == 1, counters  # one round trip (and one commit) for both windows


def test_a_post_whose_card_page_has_a_charset_no_browser_reads_is_published_with_its_card(
    api,
    channel,
    use_pds,
    account,
    settings,
    site,  # noqa: F811
):
    settings.INTEGRATIONS_LINK_CARDS = True
    page = "<title>Café</title>".encode()
    site.routes["/rot13"] = (200, {"Content-Type": "text/html; charset=rot13"}, page)
    site.routes["/rfc2231"] = (200, {"Content-Type": "text/html; charset*=utf-8''base64"}, page)
    for path in ("/rot13", "/rfc2231"):
        response = publish(api, channel, f"See {site.url}{path}")
        assert response.status_code == 201, response.content
        assert response.json()["parts"][0]["card"]["title"] == "Café"


def test_a_card_title_with_a_nul_byte_is_stored_and_published_clean(api, channel, use_pds, account, settings, site):  # noqa: F811
    """PostgreSQL's jsonb and text refuse \\u0000: run on PostgreSQL too (TEST_DATABASE_URL)."""
    settings.INTEGRATIONS_LINK_CARDS = True
    site.routes["/nul"] = (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        b'<meta property="og:title" content="Null\x00 title"><meta name="description" content="a\x00b">',
    )
    response = publish(api, channel, f"See {site.url}/nul")
    assert response.status_code == 201, response.content
    assert response.json()["parts"][0]["card"]["title"] == "Null title"
    part = Post.objects.get().parts.get()
    assert part.card["title"] == "Null title" and part.card["description"] == "ab"
    [stored] = records(use_pds, account.did)
    assert stored["value"]["embed"]["external"]["title"] == "Null title"


# --- the contract: what the schema says is what the API reads (issue 23) ----------------------------------------------
def scheduled(api, channel, text="later", **extra):
    """A post scheduled an hour ahead, through the API."""
    from tests.bluesky.posts.test_scheduling import iso

    body = {"channel": channel.pk, "parts": [{"text": text, "link_card": None}], "scheduled_at": iso(3600), **extra}
    response = api.post(POSTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


IMPOSSIBLE_TIMES = [
    "2027-02-29T12:00:00Z",  # no February 29th in 2027
    "2027-01-01T24:00:00Z",
    "2027-13-01T12:00:00Z",
    "2027-01-01T12:60:00Z",
    "2027-01-01T12:00:61Z",
    "2027-01-01T12:00:00+24:00",
    "2027-01-01T12:00:00+25:00",
]


@pytest.mark.parametrize("value", IMPOSSIBLE_TIMES)
def test_an_impossible_time_is_a_400_naming_scheduled_at_on_create_and_edit(api, channel, value):
    body = {"channel": channel.pk, "parts": [{"text": "when?", "link_card": None}], "scheduled_at": value}
    error = assert_error(api.post(POSTS, body, format="json"), 400, "invalid")
    assert set(error["fields"]) == {"scheduled_at"}
    assert error["message"].startswith("That date or time does not exist")
    assert not Post.objects.exists()

    post = scheduled(api, channel)
    error = assert_error(api.patch(f"{POSTS}{post['id']}/", {"scheduled_at": value}, format="json"), 400, "invalid")
    assert set(error["fields"]) == {"scheduled_at"}
    assert api.get(f"{POSTS}{post['id']}/").json()["scheduled_at"] == post["scheduled_at"]


@pytest.mark.parametrize(
    ("value", "code"),
    [("9999-12-31T23:59:59-01:00", "scheduled_too_far"), ("0001-01-01T00:00:00+01:00", "scheduled_in_the_past")],
)
def test_a_time_whose_utc_leaves_the_calendar_is_said_too_far_or_past_not_out_of_range(api, channel, value, code):
    body = {"channel": channel.pk, "parts": [{"text": "when?", "link_card": None}], "scheduled_at": value}
    error = assert_error(api.post(POSTS, body, format="json"), 400, code)
    assert "range" not in error["message"]
    assert not Post.objects.exists()


def test_a_leap_second_is_read_as_the_59th_second(api, channel):
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) + timedelta(days=30)).date()
    body = {"channel": channel.pk, "parts": [{"text": "leap", "link_card": None}], "scheduled_at": f"{day}T23:59:60Z"}
    created = api.post(POSTS, body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["scheduled_at"] == f"{day}T23:59:59Z"

    later = day + timedelta(days=1)
    moved = api.patch(f"{POSTS}{created.json()['id']}/", {"scheduled_at": f"{later}t23:59:60.5z"}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["scheduled_at"] == f"{later}T23:59:59.500000Z"


@pytest.mark.parametrize("encoding", ["multipart", "form"])
def test_a_post_body_that_is_not_json_is_refused_with_415_and_nothing_changes(api, channel, encoding):
    import json

    post = scheduled(api, channel, "the old text")
    url = f"{POSTS}{post['id']}/"
    parts = json.dumps([{"text": "the new text"}])  # how OpenAPI encodes an array in a form
    if encoding == "multipart":
        edit = api.patch(url, {"parts": parts}, format="multipart")
        create = api.post(POSTS, {"channel": channel.pk, "parts": parts}, format="multipart")
    else:
        form = "application/x-www-form-urlencoded"
        edit = api.patch(url, f"parts={parts}", content_type=form)
        create = api.post(POSTS, f"channel={channel.pk}&parts[0]text=hi", content_type=form)  # DRF's own syntax
    for response in (edit, create):
        error = assert_error(response, 415, "unsupported_media_type")
        assert "Content-Type: application/json" in error["message"]
    assert api.get(url).json()["parts"][0]["text"] == "the old text"
    assert Post.objects.count() == 1


def test_media_is_uploaded_as_multipart_only(api):
    """A JSON body cannot carry a file: 415 saying what to send, not a 400 about a missing field."""
    error = assert_error(api.post("/api/v1/media/", {"file": "x"}, format="json"), 415, "unsupported_media_type")
    assert "Content-Type: multipart/form-data" in error["message"]


def test_the_schema_states_what_the_post_operations_accept(api):
    import json

    document = json.loads(api.get("/api/schema/", {"format": "json"}).content)
    paths, schemas = document["paths"], document["components"]["schemas"]
    for path, method in (("/api/v1/posts/", "post"), ("/api/v1/posts/{id}/", "patch")):
        operation = paths[path][method]
        assert list(operation["requestBody"]["content"]) == ["application/json"]
        assert "415" in operation["responses"]
    media = paths["/api/v1/media/"]["post"]
    assert list(media["requestBody"]["content"]) == ["multipart/form-data"] and "415" in media["responses"]
    assert schemas["MediaUpload"]["properties"]["file"]["format"] == "binary"
    connect = paths["/api/v1/channels/bluesky/"]["post"]["requestBody"]["content"]
    assert set(connect) == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}

    for name in ("PostInput", "PatchedPostUpdate"):
        parts = schemas[name]["properties"]["parts"]
        assert (parts["minItems"], parts["maxItems"]) == (1, 25)
    part = schemas["PartInput"]["properties"]
    assert part["langs"]["items"]["minLength"] == 1 and part["langs"]["maxItems"] == 3
    assert part["images"]["maxItems"] == 4
    assert schemas["ImageInput"]["properties"]["alt"]["maxLength"] == 2000
    card = next(option for option in part["link_card"]["oneOf"] if option["type"] == "object")
    assert card["properties"]["url"]["pattern"] == "^[Hh][Tt][Tt][Pp][Ss]?://"
    assert "23:59:60" in schemas["PostInput"]["properties"]["scheduled_at"]["description"]


@pytest.mark.parametrize(
    ("part", "code"),
    [
        ({"text": "hi", "langs": ["en", "de", "fr", "es"]}, "invalid_language"),  # maxItems 3
        ({"text": "hi", "images": [{"media": 1, "alt": "x"}] * 5}, "too_many_images"),  # maxItems 4
        ({"text": "hi", "images": [{"media": 1, "alt": "x" * 2001}]}, "invalid"),  # maxLength 2000
        ({"text": "hi", "link_card": {"url": "mailto:someone@example.com"}}, "invalid"),  # pattern https?://
    ],
)
def test_what_the_schema_refuses_the_api_refuses(api, channel, part, code):
    assert_error(api.post(POSTS, {"channel": channel.pk, "parts": [part]}, format="json"), 400, code)
    assert not Post.objects.exists()


@pytest.mark.parametrize(
    ("parts", "message", "fields"),
    [
        ([{}], "Part 1: text is required.", {"0": {"text": ["This field is required."]}}),
        (
            [{"text": "a"}, {"text": "b", "images": [{"media": 0}]}],
            "Part 2, image 1: Ensure media is greater than or equal to 1.",
            {"1": {"images": {"0": {"media": ["Ensure this value is greater than or equal to 1."]}}}},
        ),
        (
            [{"text": "a", "langs": ["en", ""]}],
            "Part 1: language 2 may not be blank.",
            {"0": {"langs": {"1": ["This field may not be blank."]}}},
        ),
        (
            [{"text": "a", "link_card": {"url": "not an address"}}],
            "Part 1, link_card, url: Enter a valid URL.",
            {"0": {"link_card": {"url": ["Enter a valid URL."]}}},
        ),
        (["a"], "Part 1: Invalid data. Expected a dictionary, but got str.", None),
        ("a", "parts must be a list (a JSON array).", None),
        ([], "parts may not be empty.", {"non_field_errors": ["This list may not be empty."]}),
        ([{"text": "a", "images": "x"}], "Part 1: images must be a list (a JSON array).", None),
        ([{"text": "a", "langs": "en"}], "Part 1: langs must be a list (a JSON array).", None),
    ],
)
def test_a_mistake_inside_parts_is_told_in_a_sentence_naming_the_part(api, channel, parts, message, fields):
    response = api.post(POSTS, {"channel": channel.pk, "parts": parts}, format="json")
    error = assert_error(response, 400, "invalid")
    assert error["message"] == message
    assert "ErrorDetail" not in response.content.decode()
    if fields is not None:
        assert error["fields"] == {"parts": fields}
    assert not Post.objects.exists()


def test_a_missing_field_is_named_and_a_non_field_error_is_told_as_it_is(api, channel):
    error = assert_error(api.post(POSTS, {"parts": [{"text": "hi"}]}, format="json"), 400, "invalid")
    assert error["message"] == "channel is required."
    error = assert_error(api.post(POSTS, [1, 2], format="json"), 400, "invalid")
    assert error["message"] == "Invalid data. Expected a dictionary, but got list."
    assert set(error["fields"]) == {"non_field_errors"}


@pytest.mark.parametrize(
    "part",
    [{"text": 0}, {"text": "x", "images": [{"media": 1, "alt": 0}]}, {"text": "x", "langs": [7]}, {"text": True}],
)
def test_a_number_or_boolean_sent_for_text_is_refused_not_saved_as_its_text(api, channel, part):
    error = assert_error(api.post(POSTS, {"channel": channel.pk, "parts": [part]}, format="json"), 400, "invalid")
    assert "Must be text (a JSON string)" in error["message"]
    assert not Post.objects.exists()
