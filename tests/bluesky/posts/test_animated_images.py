"""Animated images until video exists: a user's upload is refused with a message that names the choice (post the first
frame, or another image); the web composer keeps the first frame aside and offers both as buttons. A link card's
thumbnail (nobody to ask) still becomes the first frame."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from integrations.bluesky.posts.images import AnimatedImage, prepare
from integrations.models import Media, Post
from tests.bluesky.posts.test_images import saved
from tests.bluesky.posts.test_publishing import records
from tests.web.test_posts_web import body, errors_of, text_of

COMPOSE = reverse("integrations:compose")
CHOICE = "You can post its first frame as a still image, or choose another image."


def animation(fmt: str = "GIF") -> bytes:
    frames = [Image.new("RGB", (120, 80), color) for color in ("red", "green", "blue")]
    return saved(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_an_animation_is_refused_for_a_post_and_becomes_its_first_frame_when_chosen(fmt):
    with pytest.raises(AnimatedImage):
        prepare(animation(fmt), first_frame=False)
    still = prepare(animation(fmt), first_frame=True)
    red, green, blue = Image.open(io.BytesIO(still.data)).convert("RGB").getpixel((3, 3))
    assert red > 240 and green < 16 and blue < 16  # the first frame (WebP is lossy)
    assert prepare(animation(fmt)).width == 120  # the default (a link card's thumbnail): the first frame
    single = saved(Image.new("RGB", (30, 20), "red"), fmt)
    assert prepare(single, first_frame=False).width == 30  # a still GIF, PNG or WebP is no animation


@pytest.mark.pds
@pytest.mark.django_db
def test_the_api_refuses_an_animated_gif_naming_the_choice(api, settings, tmp_path):
    from tests.api.test_api import assert_error

    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("moving.gif", animation(), content_type="image/gif")
    error = assert_error(api.post("/api/v1/media/", {"file": upload}, format="multipart"), 400, "animated_image")
    assert CHOICE in error["message"]
    assert not Media.objects.exists()


@pytest.mark.pds
@pytest.mark.django_db
def test_the_composer_keeps_the_first_frame_aside_and_posts_it_only_when_asked(
    alice_client, channel, use_pds, account, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    data = body(channel, "A moving picture", **{"parts-0-alt_1": "Three colours"})
    data["parts-0-image_1"] = SimpleUploadedFile("moving.gif", animation(), content_type="image/gif")
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 400 and not Post.objects.exists()
    page = text_of(response)
    assert CHOICE in errors_of(response)
    frame = Media.objects.get()
    assert f'name="parts-0-pending_1" value="{frame.pk}"' in page and f'src="/app/media/{frame.pk}"' in page
    assert 'value="frame-0-1"' in page and 'value="noframe-0-1"' in page
    assert records(use_pds, account.did) == []

    # "Choose another image": the frame is gone, the slot is empty again.
    again = alice_client.post(
        COMPOSE, {**data, "parts-0-image_1": "", "parts-0-pending_1": frame.pk, "action": "noframe-0-1"}
    )
    assert again.status_code == 200 and "pending_1" not in text_of(again).split('name="parts-0-image_1"')[0][-400:]
    assert not Media.objects.exists() and 'name="parts-0-image_1"' in text_of(again)

    # Uploaded again, and "Post the first frame": attached as image 1, then published as a still.
    data["parts-0-image_1"] = SimpleUploadedFile("moving.gif", animation(), content_type="image/gif")
    frame = Media.objects.get(
        pk=int(
            alice_client.post(COMPOSE, data).content.decode().split('name="parts-0-pending_1" value="')[1].split('"')[0]
        )
    )
    chosen = alice_client.post(
        COMPOSE, {**data, "parts-0-image_1": "", "parts-0-pending_1": frame.pk, "action": "frame-0-1"}
    )
    assert f'name="parts-0-media_1" value="{frame.pk}"' in text_of(chosen) and CHOICE not in text_of(chosen)
    published = alice_client.post(COMPOSE, {**data, "parts-0-image_1": "", "parts-0-media_1": frame.pk})
    assert published.status_code == 302, errors_of(published)
    [record] = records(use_pds, account.did)
    [image] = record["value"]["embed"]["images"]
    assert image["alt"] == "Three colours" and image["image"]["mimeType"] == "image/png"
