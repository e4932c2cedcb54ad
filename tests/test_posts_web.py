"""The composer (`/app/posts/new`) and the post list (`/app/posts`) through Django's test client, against the real
local PDS. Everything here is what the pages do without JavaScript."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from integrations.bluesky import publishing, richtext
from integrations.models import Channel, IntegrationOption, Media, Post
from tests.test_api_posts import png_bytes
from tests.test_publishing import records

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

COMPOSE = reverse("integrations:compose")
POSTS = reverse("integrations:post-list")
LONG_LINK = "https://example.com/a/rather/long/path/to/something"


@pytest.fixture(autouse=True)
def _media_in_a_temp_dir(settings, tmp_path):
    """Uploads land in a temporary MEDIA_ROOT, not in the working tree."""
    settings.MEDIA_ROOT = tmp_path


def body(channel, *texts, action="publish", langs="en", **extra):
    """The composer's fields as the page posts them (the formset's management form included)."""
    data = {
        "channel": channel.pk,
        "langs": langs,
        "action": action,
        "parts-TOTAL_FORMS": len(texts),
        "parts-INITIAL_FORMS": 0,
        "parts-MIN_NUM_FORMS": 1,
        "parts-MAX_NUM_FORMS": 25,
    }
    data.update({f"parts-{index}-text": text for index, text in enumerate(texts)})
    data.update(extra)
    return data


def image(name="photo.jpg", data=None):
    return SimpleUploadedFile(name, data or png_bytes(), content_type="image/jpeg")


def text_of(response) -> str:
    return response.content.decode()


def errors_of(response) -> str:
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', text_of(response), re.S))


def test_the_composer_lists_channels_and_says_why_one_cannot_publish(alice_client, channel, user):
    blocked = Channel.objects.create(
        user=user, did="did:plc:blocked0", handle="blocked.test", service_url="https://bsky.social", status="suspended"
    )
    gone = Channel.objects.create(
        user=user, did="did:plc:gone0", handle="gone.test", service_url="https://bsky.social", status="disconnected"
    )
    page = text_of(alice_client.get(COMPOSE))
    assert f'id="channel-{channel.pk}"' in page
    assert re.search(rf'value="{gone.pk}"\s+disabled', page) and "Connect it again to publish with it." in page
    assert re.search(rf'value="{blocked.pk}"\s+disabled aria-describedby="channel-{blocked.pk}-reason"', page)
    assert "Account suspended" in page and "Contact Bluesky support." in page
    assert 'aria-live="polite"' in page
    assert "0 of 300 characters" in page
    # A preselected channel (from the channel pages' "Write a post")
    assert re.search(rf'value="{channel.pk}"\s+checked', text_of(alice_client.get(f"{COMPOSE}?channel={channel.pk}")))
    # Choosing the blocked one anyway is refused in words.
    response = alice_client.post(COMPOSE, body(blocked, "hi"))
    assert response.status_code == 400
    assert "Choose one of your channels that can publish." in errors_of(response)
    assert not Post.objects.exists()


def test_publish_a_thread_with_an_image_and_alt_text_from_the_form(alice_client, channel, use_pds, account):
    data = body(channel, f"Hello {LONG_LINK} #skyport", "the second part", **{"parts-0-alt_1": "A pink square"})
    data["parts-0-image_1"] = image()
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 302 and response.url == POSTS
    post = Post.objects.get()
    assert post.status == Post.Status.PUBLISHED
    by_uri = {r["uri"]: r["value"] for r in records(use_pds, account.did)}
    first, second = (by_uri[part.uri] for part in post.parts.all())
    assert first["text"] == "Hello example.com/a/rather/lon... #skyport"
    assert first["langs"] == ["en"] and second["langs"] == ["en"]
    [embedded] = first["embed"]["images"]
    assert embedded["alt"] == "A pink square" and embedded["aspectRatio"] == {"width": 64, "height": 48}
    assert second["reply"]["parent"]["uri"] == post.parts.all()[0].uri
    assert not Media.objects.exists()  # the blob is in the repo now

    listing = text_of(alice_client.get(POSTS))
    assert "Published on @" in listing
    for part in post.parts.all():
        assert f"https://bsky.app/profile/{account.did}/post/{part.rkey}" in listing


def test_preview_shows_the_text_as_sent_with_the_exact_count_and_the_stored_image(alice_client, channel, client):
    text = f"Hi @{channel.handle}, see {LONG_LINK} #tagged\n\n\n\nbye   "
    data = body(channel, text, action="preview", **{"parts-0-alt_1": "A pink square"})
    data["parts-0-image_1"] = image()
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 200
    page = text_of(response)
    length = richtext.measure(text)
    assert f"{length.graphemes} of 300 characters" in page
    assert f'href="{LONG_LINK}"' in page and ">example.com/a/rather/lon...</a>" in page
    assert f'href="https://bsky.app/profile/{channel.handle}"' in page
    assert 'href="https://bsky.app/hashtag/tagged"' in page
    media = Media.objects.get()
    assert f'name="parts-0-media_1" value="{media.pk}"' in page  # carried on: nobody picks the file twice
    assert f'src="/app/media/{media.pk}" alt="A pink square"' in page
    served = alice_client.get(f"/app/media/{media.pk}")
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Post.objects.exists()

    # Publishing that preview uses the stored image.
    data = body(channel, text, **{"parts-0-alt_1": "A pink square", "parts-0-media_1": media.pk})
    assert alice_client.post(COMPOSE, data).status_code == 302
    assert Post.objects.get().status == Post.Status.PUBLISHED


def test_bytes_are_counted_when_close_to_the_limit(alice_client, channel):
    page = text_of(alice_client.post(COMPOSE, body(channel, "é" * 290, action="preview")))
    assert "290 of 300 characters" in page and "bytes" not in page.split("Preview of part 1")[1].split("</p>")[1]
    page = text_of(alice_client.post(COMPOSE, body(channel, "👩‍👩‍👧‍👦" * 120, action="preview")))
    assert "120 of 300 characters · 3,000 of 3,000 bytes" in page


@pytest.mark.parametrize(
    ("texts", "extra", "words"),
    [
        (["a" * 301], {}, "The post has 301 characters of 300"),
        (["é" * 1501], {}, "3,002 bytes of 3,000"),
        ([""], {}, "Write something or add an image."),
        (["hi"], {"langs": "en, de, fr, es"}, "at most 3 languages"),
        (["hi"], {"langs": "not a language!"}, "is not a language tag"),
        (["ok", "   "], {}, "Write something or add an image."),
    ],
)
def test_what_cannot_be_published_is_refused_in_words_and_nothing_is_stored(
    alice_client, channel, use_pds, account, texts, extra, words
):
    response = alice_client.post(COMPOSE, body(channel, *texts, **extra))
    assert response.status_code == 400
    assert words in errors_of(response)
    assert 'aria-invalid="true"' in text_of(response)
    assert not Post.objects.exists()
    assert records(use_pds, account.did) == []


def test_a_bad_image_is_refused_in_words_and_nothing_is_stored(alice_client, channel, use_pds, account):
    data = body(channel, "two pictures", **{"parts-0-alt_1": "good", "parts-0-alt_2": "bad"})
    data["parts-0-image_1"] = image()
    data["parts-0-image_2"] = SimpleUploadedFile("cat.png", b"<html>not an image</html>", content_type="image/png")
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 400
    assert "This image cannot be posted: Only JPEG, PNG, WebP and GIF images can be posted." in errors_of(response)
    assert not Media.objects.exists()  # not even the good one: one submission, all or nothing
    assert "parts-0-media_1" not in text_of(response) or 'name="parts-0-media_1" value=""' not in text_of(response)
    assert not Post.objects.exists()
    assert records(use_pds, account.did) == []


def test_an_image_needs_alt_text(alice_client, channel):
    data = body(channel, "pic")
    data["parts-0-image_1"] = image()
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 400
    assert "alt text" in errors_of(response).lower()
    assert not Post.objects.exists()


def test_add_and_remove_parts_without_javascript(alice_client, channel):
    page = text_of(alice_client.post(COMPOSE, body(channel, "one", "two", action="add")))
    assert 'name="parts-TOTAL_FORMS" value="3"' in page
    assert 'name="parts-2-text"' in page
    assert "errorlist" not in page  # adding a part is not a submission to check
    page = text_of(alice_client.post(COMPOSE, body(channel, "one", "two", "three", action="remove-0")))
    assert 'name="parts-TOTAL_FORMS" value="2"' in page
    assert re.search(r'name="parts-0-text"[^>]*>\ntwo</textarea>', page)
    assert re.search(r'name="parts-1-text"[^>]*>\nthree</textarea>', page)


def test_a_switched_off_integration_is_said_and_refused(alice_client, channel):
    IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    page = text_of(alice_client.get(COMPOSE))
    assert "switched" in page and "disabled" in page.split('value="publish"')[1][:20]
    response = alice_client.post(COMPOSE, body(channel, "hi"))
    assert response.status_code == 400 and not Post.objects.exists()


def test_failed_and_waiting_posts_say_why_and_are_published_again(alice_client, channel, use_pds, account, user):
    failed = publishing.accept(user, channel, [publishing.PartRequest("failed once")])
    waiting = publishing.accept(user, channel, [publishing.PartRequest("waiting")])
    Post.objects.filter(pk=failed.pk).update(
        status=Post.Status.FAILED,
        attempts=1,
        lease_until=None,
        error_code="channel_not_ready",
        error_message="It was suspended.",
    )
    Post.objects.filter(pk=waiting.pk).update(
        status=Post.Status.WAITING,
        attempts=1,
        lease_until=None,
        error_code="pds_unavailable",
        error_message="Bluesky did not answer.",
    )
    page = text_of(alice_client.get(POSTS))
    assert "Not published:" in page and "It was suspended." in page and "publish it again" in page
    assert "Bluesky did not answer." in page and "tried again automatically" in page
    assert page.count("Publish again") == 2
    assert page.index("waiting") < page.index("failed once")  # newest first

    response = alice_client.post(reverse("integrations:post-publish", args=[failed.pk]))
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == Post.Status.PUBLISHED
    assert "Published on @" in text_of(alice_client.get(POSTS))
    alice_client.post(reverse("integrations:post-publish", args=[waiting.pk]))
    assert {r["value"]["text"] for r in records(use_pds, account.did)} == {"failed once", "waiting"}
    # A published post cannot be "published again": said in words, nothing written twice.
    alice_client.post(reverse("integrations:post-publish", args=[failed.pk]))
    assert len(records(use_pds, account.did)) == 2


def test_delete_removes_the_post_from_bluesky(alice_client, channel, use_pds, account):
    alice_client.post(COMPOSE, body(channel, "first"))
    alice_client.post(COMPOSE, body(channel, "second"))
    first = Post.objects.get(parts__text="first")
    response = alice_client.post(reverse("integrations:post-delete", args=[first.pk]))
    assert response.status_code == 302
    assert "Deleted the post." in text_of(alice_client.get(POSTS))
    assert [r["value"]["text"] for r in records(use_pds, account.did)] == ["second"]
    assert alice_client.get(reverse("integrations:post-delete", args=[first.pk])).status_code == 405


def test_another_users_posts_channels_and_media_are_not_found(alice_client, channel, use_pds, account, other_user):
    alice_client.post(COMPOSE, body(channel, "mine"))
    post = Post.objects.get()
    data = body(channel, "x", action="preview", **{"parts-0-alt_1": "alt"})
    data["parts-0-image_1"] = image()
    alice_client.post(COMPOSE, data)
    media = Media.objects.get()

    bob = Client()
    bob.force_login(other_user)
    assert "mine" not in text_of(bob.get(POSTS))
    assert bob.post(reverse("integrations:post-publish", args=[post.pk])).status_code == 404
    assert bob.post(reverse("integrations:post-delete", args=[post.pk])).status_code == 404
    assert bob.get(f"/app/media/{media.pk}").status_code == 404
    assert f'id="channel-{channel.pk}"' not in text_of(bob.get(COMPOSE))
    response = bob.post(COMPOSE, body(channel, "in your name"))
    assert response.status_code == 400 and Post.objects.count() == 1
    # Naming alice's upload in bob's form does not attach it.
    response = bob.post(COMPOSE, body(channel, "hers", action="preview", **{"parts-0-media_1": media.pk}))
    assert f"/app/media/{media.pk}" not in text_of(response)
    assert len(records(use_pds, account.did)) == 1


def test_the_pages_need_a_signed_in_user(client):
    for url in (COMPOSE, POSTS, "/app/media/1"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url


def test_the_post_pages_speak_the_browsers_language(alice_client, channel, user, tmp_path, settings):
    from django.utils import translation

    from tests.test_translation import write_mo

    write_mo(
        tmp_path / "locale" / "fr" / "LC_MESSAGES" / "django.mo",
        {
            "Write a post": "Écrire un message",
            "%(count)s of %(max)s characters": "%(count)s sur %(max)s caractères",
            "Posts": "Messages",
            "Published": "Publié",
            "Published on @%(handle)s.": "Publié sur @%(handle)s.",
        },
    )
    settings.LOCALE_PATHS = [str(tmp_path / "locale")]
    try:
        french = {"accept-language": "fr"}
        page = text_of(alice_client.get(COMPOSE, headers=french))
        assert "Écrire un message" in page and "0 sur 300 caractères" in page
        assert 'data-msg-count="%(count)s sur %(max)s caractères"' in page  # the script's words, translated
        alice_client.post(COMPOSE, body(channel, "bonjour"), headers=french)
        listing = text_of(alice_client.get(POSTS, headers=french))
        assert "Publié sur @" in listing and ">Publié</span>" in listing and ">Messages</a>" in listing
    finally:
        translation.activate(settings.LANGUAGE_CODE)
