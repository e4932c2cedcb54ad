"""Replying to and quoting a post on another server, against two real reference PDSes sharing one PLC directory.

The channel's PDS (the first) has no AppView behind it: it answers `502 UpstreamFailure` when asked for a record of
a repository it does not host. The post replied to or quoted is read from its author's own PDS (the second), which
the author's DID document names; a DID that resolves to nothing, or a post that is not there, is refused with words
that say so (nothing is stored), and only a genuinely temporary fault of the author's PDS says "try again".
"""

import json

import pytest
from django.urls import reverse

from integrations.bluesky.identity import resolution
from integrations.models import Post
from tests.api.test_api import assert_error
from tests.bluesky.identity.test_identity_channels import account_on, zone  # noqa: F401 (a fixture)
from tests.bluesky.posts.test_publishing import records
from tests.security.test_outbound import serve  # noqa: F401 (a fixture)
from tests.web.test_posts_web import body, errors_of, text_of

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

POSTS = "/api/v1/posts/"
COMPOSE = reverse("integrations:compose")
NOWHERE = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"  # well-formed, registered in no PLC directory


def create_post(server, author, text, reply=None):
    return server.create_post(author, text, **({"reply": reply} if reply else {}))


@pytest.fixture
def elsewhere(second_pds, zone):  # noqa: F811
    """A thread by an account on the second PDS (its handle resolves by a DNS TXT record): its root, and a reply to
    it (the post replied to and quoted here), with that reply's bsky.app address."""
    author = account_on(second_pds, zone)
    root = create_post(second_pds, author, "The thread starts here")
    answer = create_post(second_pds, author, "The post being answered", reply={"root": root, "parent": root})
    address = f"https://bsky.app/profile/{author.handle}/post/{answer['uri'].rsplit('/', 1)[1]}"
    return author, root, answer, address


def test_the_channels_pds_cannot_read_that_post_itself(use_pds, elsewhere):
    """What this file is about: the channel's PDS, asked for the other server's record, has no AppView to ask."""
    author, _, answer, _ = elsewhere
    rkey = answer["uri"].rsplit("/", 1)[1]
    params = {"repo": author.did, "collection": "app.bsky.feed.post", "rkey": rkey}
    asked = use_pds.xrpc("GET", "com.atproto.repo.getRecord", params=params)
    assert (asked.status_code, asked.json()["error"]) == (502, "UpstreamFailure")


def test_a_reply_to_and_a_quote_of_a_post_on_another_server_are_published_with_its_references(
    api, channel, use_pds, account, elsewhere
):
    _, root, answer, address = elsewhere
    response = api.post(
        POSTS,
        {"channel": channel.pk, "parts": [{"text": "I agree"}, {"text": "and more"}], "reply_to": address},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "published", response.json()
    quoted = api.post(
        POSTS, {"channel": channel.pk, "parts": [{"text": "look"}], "quote": answer["uri"]}, format="json"
    )
    assert quoted.status_code == 201, quoted.content
    assert quoted.json()["status"] == "published", quoted.json()

    by_uri = {r["uri"]: r["value"] for r in records(use_pds, account.did)}
    first, second = (by_uri[part["uri"]] for part in response.json()["parts"])
    assert first["reply"] == {"root": root, "parent": answer}  # the thread's root, read from the author's record
    assert second["reply"]["root"] == root
    assert by_uri[quoted.json()["parts"][0]["uri"]]["embed"] == {"$type": "app.bsky.embed.record", "record": answer}


def test_the_composer_previews_and_publishes_a_reply_to_a_post_on_another_server(
    alice_client, channel, use_pds, account, elsewhere
):
    author, root, answer, address = elsewhere
    data = body(channel, "I agree", action="preview", reply_to=address, quote=answer["uri"])
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 200, errors_of(response)
    assert not errors_of(response)
    preview = text_of(response).split('id="preview"')[1]
    assert f"Replying to @{author.handle}" in preview
    assert preview.count("The post being answered") == 2  # replied to and quoted

    response = alice_client.post(COMPOSE, {**data, "action": "publish"})
    assert response.status_code == 302, errors_of(response)
    [value] = [r["value"] for r in records(use_pds, account.did)]
    assert value["reply"] == {"root": root, "parent": answer}
    assert value["embed"] == {"$type": "app.bsky.embed.record", "record": answer}


@pytest.mark.parametrize(
    ("address", "words"),
    [
        (f"at://{NOWHERE}/app.bsky.feed.post/3kabcdefghijk", f"The account {NOWHERE} was not found"),
        ("at://did:web:nobody.test/app.bsky.feed.post/3kabcdefghijk", "The account did:web:nobody.test was not found"),
        ("https://bsky.app/profile/nobody-here.test/post/3kabcdefghijk", "@nobody-here.test does not resolve"),
    ],
)
def test_a_reference_to_an_account_that_does_not_exist_is_refused_and_nothing_is_stored(
    api, alice_client, channel, use_pds, account, address, words
):
    response = api.post(POSTS, {"channel": channel.pk, "parts": [{"text": "hi"}], "reply_to": address}, format="json")
    error = assert_error(response, 400, "invalid_reference")
    assert words in error["message"] and "try again" not in error["message"]
    quoted = api.post(POSTS, {"channel": channel.pk, "parts": [{"text": "hi"}], "quote": address}, format="json")
    assert assert_error(quoted, 400, "invalid_reference")["message"] == error["message"]
    page = alice_client.post(COMPOSE, body(channel, "hi", action="preview", reply_to=address))
    assert words in errors_of(page)
    assert not Post.objects.exists()
    assert records(use_pds, account.did) == []


def test_a_post_that_is_not_on_its_authors_server_is_refused(api, channel, use_pds, account, elsewhere):
    author = elsewhere[0]
    address = f"at://{author.did}/app.bsky.feed.post/3kabcdefghijk"
    response = api.post(POSTS, {"channel": channel.pk, "parts": [{"text": "hi"}], "quote": address}, format="json")
    error = assert_error(response, 400, "invalid_reference")
    assert f"There is no post at '{address}'" in error["message"]
    assert not Post.objects.exists() and records(use_pds, account.did) == []


@pytest.fixture
def flaky(serve, monkeypatch, request):  # noqa: F811
    """A server on loopback standing for https://flaky.test: it serves did:web:flaky.test's document (which names it
    as the account's PDS), or a 503 for it when the test's parameter says the document fails, and answers every XRPC
    call with a 502."""
    document_fails = request.param

    def answer(path):
        failure = {"error": "InternalServerError", "message": "Internal Server Error"}
        if path != "/.well-known/did.json":
            return 502, {"Content-Type": "application/json"}, json.dumps(failure).encode()
        if document_fails:
            return 503, {"Content-Type": "text/plain"}, b"down for maintenance"
        pds = {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": server.url}
        document = {"id": "did:web:flaky.test", "service": [pds]}
        return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()

    server = serve(answer)
    monkeypatch.setattr(resolution, "WEB_BASE", server.url)  # every did:web document is asked of that server
    return server


@pytest.mark.parametrize(
    ("flaky", "status", "code", "named"),
    [(False, 502, "pds_error", "its PDS"), (True, 503, "pds_unreachable", "https://flaky.test")],
    indirect=["flaky"],
)
def test_a_temporary_fault_of_the_authors_server_says_try_again(
    api, channel, use_pds, account, flaky, status, code, named
):
    """Its PDS answering a 5xx, or its DID document not to be had for now: asking again later may work."""
    named = flaky.url if named == "its PDS" else named
    address = "at://did:web:flaky.test/app.bsky.feed.post/3kabcdefghijk"
    response = api.post(POSTS, {"channel": channel.pk, "parts": [{"text": "hi"}], "reply_to": address}, format="json")
    error = assert_error(response, status, code)
    assert f"server at {named}" in error["message"] and "try again" in error["message"]
    asked_pds = any(path.startswith("/xrpc/com.atproto.repo.getRecord?") for path, _ in flaky.requests)
    assert asked_pds is (status == 502)
    assert not Post.objects.exists() and records(use_pds, account.did) == []


def test_an_authors_server_at_a_private_address_is_never_called(
    api, channel, use_pds, account, second_pds, elsewhere, public_only
):
    """The author's DID document is theirs to write: in production its PDS must be a public address, whatever
    INTEGRATIONS_ALLOW_INSECURE_PDS allows the channel's own (here the second PDS, on loopback, is refused)."""
    answer = elsewhere[2]
    response = api.post(
        POSTS, {"channel": channel.pk, "parts": [{"text": "hi"}], "reply_to": answer["uri"]}, format="json"
    )
    error = assert_error(response, 400, "invalid_reference")
    assert f"http://localhost:{second_pds.port}, is not a public https address" in error["message"]
    assert not Post.objects.exists() and records(use_pds, account.did) == []
