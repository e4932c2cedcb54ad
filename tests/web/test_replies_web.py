"""Replies and quotes from the web composer (without JavaScript, through Django's test client) against the real local
PDS: "Reply to" and "Quote" take a bsky.app address or an at:// URI, Preview shows the post they name, the channel
feed's Reply and Quote open the composer filled in, and a scheduled reply or quote keeps its target when edited."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.models import Post
from integrations.web.compose import submit_tokens
from tests.bluesky.posts.test_publishing import records
from tests.web.test_posts_web import body, errors_of, text_of

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

COMPOSE = reverse("integrations:compose")
POSTS = reverse("integrations:post-list")


@pytest.fixture
def target(use_pds):
    """A post by another account on the same PDS: (its author, its at:// URI, its CID, its bsky.app address)."""
    author = use_pds.create_account()
    written = use_pds.create_post(author, "The post being answered")
    uri, cid = written["uri"], written["cid"]
    address = f"https://bsky.app/profile/{author.handle}/post/{uri.rsplit('/', 1)[1]}"
    return author, uri, cid, address


def record_of(pds, account, post, index=0):
    part = post.parts.all()[index]
    return {r["uri"]: r["value"] for r in records(pds, account.did)}[part.uri]


def test_preview_shows_the_post_replied_to_and_quoted_and_publishing_sends_both(
    alice_client, channel, use_pds, account, target
):
    author, uri, cid, address = target
    data = body(channel, "I agree", "and more", action="preview", reply_to=address, quote=uri)
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 200, errors_of(response)
    page = text_of(response)
    preview = page.split('id="preview"')[1]
    assert f"Replying to @{author.handle}" in preview
    assert preview.count("The post being answered") == 2  # above the thread (replied to) and in part 1 (quoted)
    assert "2026-11-30 08:15" in preview  # its time, on the user's clock (the site's here: UTC)
    for field in ("reply_to", "quote"):  # and under each field
        box = page.split(f'data-reference="{field}"')[1].split("</div>\n</div>")[0]
        assert "The post being answered" in box and f"@{author.handle}" in box

    response = alice_client.post(COMPOSE, {**data, "action": "publish"})
    assert response.status_code == 302, errors_of(response)
    post = Post.objects.get()
    assert (post.reply_to_uri, post.quote_uri) == (uri, uri)
    first, second = record_of(use_pds, account, post), record_of(use_pds, account, post, 1)
    assert first["reply"] == {"root": {"uri": uri, "cid": cid}, "parent": {"uri": uri, "cid": cid}}
    assert first["embed"] == {"$type": "app.bsky.embed.record", "record": {"uri": uri, "cid": cid}}
    assert second["reply"]["root"] == {"uri": uri, "cid": cid} and "embed" not in second
    listing = text_of(alice_client.get(POSTS))
    assert '<span class="badge marker">Reply</span>' in listing and '<span class="badge marker">Quote</span>' in listing


def test_an_address_that_is_not_a_post_or_names_none_is_refused_next_to_its_field(
    alice_client, channel, use_pds, account, target
):
    _author, uri, _, _ = target
    response = alice_client.post(COMPOSE, body(channel, "hi", reply_to="https://example.com/not/a/post"))
    assert response.status_code == 400 and not Post.objects.exists()
    field = text_of(response).split('data-reference="reply_to"')[1].split('data-reference="quote"')[0]
    assert "is not the address of a Bluesky post" in field and 'aria-invalid="true"' in field

    missing = uri.rsplit("/", 1)[0] + "/3kaaaaaaaaaa2"
    response = alice_client.post(COMPOSE, body(channel, "hi", quote=missing))
    assert response.status_code == 400 and not Post.objects.exists()
    field = text_of(response).split('data-reference="quote"')[1]
    assert "There is no post at" in field
    assert records(use_pds, account.did) == []


def test_the_feeds_reply_and_quote_open_the_composer_filled_in(alice_client, channel, use_pds, account, target):
    from integrations.bluesky.posts.accept import PartRequest, accept
    from integrations.bluesky.posts.submit import publish

    mine = accept(channel.user, channel, [PartRequest("My own post", link_card=None)])
    publish(mine.pk, claimed=mine)
    uri = mine.parts.get().uri
    page = text_of(alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])))
    reply = re.search(r'href="([^"]+)" data-reply>', page)[1].replace("&amp;", "&")
    quote = re.search(r'href="([^"]+)" data-quote>', page)[1].replace("&amp;", "&")
    assert reply.startswith(COMPOSE) and quote.startswith(COMPOSE)

    composer = text_of(alice_client.get(reply))
    assert re.search(rf'value="{channel.pk}"\s+checked', composer)
    assert f'name="reply_to" value="{uri}"' in composer
    assert "My own post" in composer.split('data-reference="reply_to"')[1]  # the post it answers, shown at once
    assert re.search(r"<details class=\"card references\" data-references open>", composer)
    composer = text_of(alice_client.get(quote))
    assert f'name="quote" value="{uri}"' in composer and "My own post" in composer.split('data-reference="quote"')[1]

    # Without a channel that can publish, the feed offers neither.
    from integrations.models import Channel

    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    assert "data-reply>" not in text_of(alice_client.get(reverse("integrations:channel-detail", args=[channel.pk])))


def test_a_scheduled_reply_and_quote_keep_their_target_when_edited(alice_client, channel, use_pds, account, target):
    _author, uri, cid, address = target
    when = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    data = body(channel, "Later", scheduled_at=f"{when:%Y-%m-%dT%H:%M}", time_zone="UTC", reply_to=address, quote=uri)
    assert alice_client.post(COMPOSE, data).status_code == 302
    post = Post.objects.get()
    edit = reverse("integrations:post-edit", args=[post.pk])

    page = text_of(alice_client.get(edit))
    assert f'name="reply_to" value="{uri}"' in page and f'name="quote" value="{uri}"' in page
    assert "The post being answered" in page.split('data-reference="reply_to"')[1]

    changed = body(channel, "Later, reworded", scheduled_at=f"{when:%Y-%m-%dT%H:%M}", time_zone="UTC")
    del changed["channel"]
    changed.update(reply_to=uri, quote=uri)  # as the edit page sends them back
    assert alice_client.post(edit, changed).status_code == 302
    old_page = {k: v for k, v in changed.items() if k not in ("reply_to", "quote")}  # a page without the fields
    old_page["parts-0-text"] = "Later, reworded again"
    old_page["submit_token"] = submit_tokens.new_submit_token(channel.user)  # another page, another token
    assert alice_client.post(edit, old_page).status_code == 302

    edited = Post.objects.get()
    planned = edited.parts.get().record
    assert (edited.reply_to_uri, edited.quote_uri) == (uri, uri) and planned["text"] == "Later, reworded again"
    assert planned["reply"]["parent"] == {"uri": uri, "cid": cid}
    assert planned["embed"]["record"] == {"uri": uri, "cid": cid}

    dropped = {**changed, "quote": "", "submit_token": submit_tokens.new_submit_token(channel.user)}  # emptied: it goes
    assert alice_client.post(edit, dropped).status_code == 302
    assert Post.objects.get().quote_uri == "" and "embed" not in Post.objects.get().parts.get().record


def test_the_reference_endpoint_answers_the_composers_script(alice_client, channel, use_pds, target, settings):
    author, _uri, _, address = target
    endpoint = reverse("integrations:post-reference")
    alice_client.cookies["skyport_tz"] = "Asia/Tokyo"
    answer = alice_client.post(endpoint, {"address": address, "channel": channel.pk}).json()
    assert answer == {
        "found": True,
        "handle": author.handle,
        "did": author.did,
        "text": "The post being answered",
        "time": "2026-11-30 17:15",  # on the user's clock
        "has_images": False,
    }
    assert alice_client.post(endpoint, {"address": ""}).json() == {"found": False, "problem": ""}
    refused = alice_client.post(endpoint, {"address": "not an address"}).json()
    assert refused["found"] is False and "is not the address of a Bluesky post" in refused["problem"]
    assert alice_client.get(endpoint).status_code == 405
    assert Client().post(endpoint, {"address": address}).status_code == 302  # signed-in users only


def test_reference_lookups_are_limited_per_user(alice_client, channel, use_pds, target, monkeypatch):
    from integrations.web import cards as views

    monkeypatch.setattr(views, "CARD_PREVIEWS_PER_WINDOW", (2, 300))  # each lookup makes the server read a post
    endpoint = reverse("integrations:post-reference")
    answers = [alice_client.post(endpoint, {"address": target[3]}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429] and int(answers[2]["Retry-After"]) > 0
