"""What a hostile tenant sends to the composer and the API: each gets a clear answer, never a server error, and
nothing is stored."""

import pytest
from django.urls import reverse

from integrations.models import Media, Post
from tests.web.test_posts_web import COMPOSE, body, errors_of

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

HUGE = "1" * 30  # far past any 64-bit id


@pytest.mark.parametrize("value", [HUGE, "9223372036854775808", "²", "١٢"])
def test_a_media_id_no_database_can_hold_is_refused_in_the_composer(alice_client, channel, value):
    response = alice_client.post(
        COMPOSE, body(channel, "with an image", **{"parts-0-media_1": value, "parts-0-alt_1": "a dot"})
    )
    assert response.status_code == 400
    assert "That image is not one of your uploads" in errors_of(response) or "Enter a whole number" in errors_of(
        response
    )
    assert not Post.objects.exists()


@pytest.mark.parametrize("action", ["preview", "add"])
def test_a_huge_media_id_does_not_break_preview_or_add_part(alice_client, channel, action):
    response = alice_client.post(COMPOSE, body(channel, "x", action=action, **{"parts-0-media_1": HUGE}))
    assert response.status_code in (200, 400)


def test_the_api_refuses_media_and_channel_ids_no_database_can_hold(api, channel):
    response = api.post(
        "/api/v1/posts/",
        {"channel": channel.pk, "parts": [{"text": "x", "images": [{"media": int(HUGE), "alt": "a"}]}]},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    assert "images" in str(response.json()["error"]["fields"])
    response = api.post("/api/v1/posts/", {"channel": int(HUGE), "parts": [{"text": "x"}]}, format="json")
    assert response.status_code == 400, response.content
    assert "channel" in response.json()["error"]["fields"]
    assert not Post.objects.exists() and not Media.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/posts/{HUGE}/",
        f"/api/v1/channels/{HUGE}/",
        f"/api/v1/channels/{HUGE}/events/",
    ],
)
def test_api_paths_with_ids_no_database_can_hold_are_not_found(api, path):
    assert api.get(path).status_code == 404


@pytest.mark.parametrize("name", ["integrations:post-edit", "integrations:channel-detail", "integrations:media-file"])
def test_web_paths_with_ids_no_database_can_hold_are_not_found(alice_client, name):
    assert alice_client.get(reverse(name, args=[int(HUGE)])).status_code == 404


# --- a form sent twice makes one post (item 14) ------------------------------------------------------------------
def test_the_same_composer_form_sent_twice_makes_one_post(alice_client, channel, use_pds, account):
    from tests.bluesky.posts.test_publishing import records

    data = body(channel, "only once")
    first = alice_client.post(COMPOSE, data)
    assert first.status_code == 302
    second = alice_client.post(COMPOSE, data, follow=True)
    assert second.redirect_chain[-1][0] == reverse("integrations:post-list")
    assert "This form was sent twice: only the first one counted." in second.content.decode()
    assert Post.objects.count() == 1 and len(records(use_pds, account.did)) == 1


def test_a_new_page_gets_a_new_token_and_each_publishes(alice_client, channel):
    import re

    tokens = []
    for text in ("one", "two"):
        page = alice_client.get(COMPOSE).content.decode()
        token = re.search(r'name="submit_token" value="([^"]+)"', page)[1]
        tokens.append(token)
        assert alice_client.post(COMPOSE, {**body(channel, text), "submit_token": token}).status_code == 302
    assert tokens[0] != tokens[1] and Post.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_sends_of_one_form_at_the_same_moment_make_one_post(channel, user, use_pds, account):
    import threading

    from django.db import connection
    from django.test import Client

    from tests.bluesky.posts.test_publishing import records

    data = body(channel, "raced")
    barrier, statuses = threading.Barrier(2), []

    def send():
        try:
            client = Client()
            client.force_login(user)
            barrier.wait()
            statuses.append(client.post(COMPOSE, data).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [302, 302]
    assert Post.objects.count() == 1 and len(records(use_pds, account.did)) == 1


def test_a_token_from_another_user_or_a_forged_one_is_refused_and_nothing_is_sent(alice_client, channel, other_user):
    from integrations.web.compose import submit_tokens

    for token in (submit_tokens.new_submit_token(other_user), "forged", ""):
        response = alice_client.post(COMPOSE, {**body(channel, "x"), "submit_token": token})
        assert response.status_code == 400
        assert "This page is out of date. Check the post and send it again." in response.content.decode()
    assert not Post.objects.exists()


def test_after_a_refusal_the_page_carries_a_new_token_that_works(alice_client, channel, user, monkeypatch):
    import re

    from integrations.bluesky import services
    from integrations.bluesky.xrpc.errors import PdsUnreachable

    data = body(channel, "refused first")
    accept = services.accept

    def unreachable(*args, **kwargs):
        raise PdsUnreachable()

    monkeypatch.setattr(services, "accept", unreachable)
    refused = alice_client.post(COMPOSE, data)
    assert refused.status_code == 400 and "Could not reach the Bluesky server" in refused.content.decode()
    token = re.search(r'name="submit_token" value="([^"]+)"', refused.content.decode())[1]
    assert token != data["submit_token"]  # the first one was spent on the attempt
    monkeypatch.setattr(services, "accept", accept)
    assert alice_client.post(COMPOSE, {**data, "submit_token": token}).status_code == 302
    assert Post.objects.count() == 1


# --- the card thumbnail view fetches only what the composer asked for -------------------------------------------
def test_a_thumbnail_link_from_another_site_or_another_user_fetches_nothing(
    alice_client, channel, other_user, settings, monkeypatch
):
    """It was `GET ...?url=`: a page on another site could make a signed-in user's browser have the server fetch
    any page, on the user's preview quota. Only a link the composer signed for this user, within the hour, works."""
    from integrations.bluesky.posts import linkcards
    from integrations.web.compose import cards as composer

    settings.INTEGRATIONS_LINK_CARDS = True
    fetched = []
    monkeypatch.setattr(
        linkcards, "fetch_card", lambda url, **kwargs: fetched.append(url) or linkcards.CardResult(None, "none")
    )
    image = reverse("integrations:link-card-image")
    assert alice_client.get(image, {"url": "https://victim.example/"}).status_code == 404
    assert alice_client.get(image, {"card": "forged"}).status_code == 404
    assert alice_client.get(composer.thumb_link(other_user.pk, "https://example.com/")).status_code == 404
    own = composer.thumb_link(channel.user.pk, "https://example.com/")
    monkeypatch.setattr(composer, "THUMB_LINK_MAX_AGE", -1)  # an hour later
    assert alice_client.get(own).status_code == 404
    assert fetched == []
    monkeypatch.setattr(composer, "THUMB_LINK_MAX_AGE", 3600)
    assert alice_client.get(own).status_code == 404  # its own link is looked up (here the page has no card)
    assert fetched == ["https://example.com/"]
