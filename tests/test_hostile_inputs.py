"""What a hostile tenant sends to the composer and the API: each gets a clear answer, never a server error, and
nothing is stored."""

import pytest
from django.urls import reverse

from integrations.models import Media, Post
from tests.test_posts_web import COMPOSE, body, errors_of

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
