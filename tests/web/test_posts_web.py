"""The composer (`/app/posts/new`) and the post list (`/app/posts`) through Django's test client, against the real
local PDS. Everything here is what the pages do without JavaScript."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from integrations.bluesky.posts import richtext
from integrations.bluesky.posts.accept import PartRequest, accept
from integrations.bluesky.posts.submit import publish_due
from integrations.models import Channel, IntegrationOption, Media, Post
from integrations.web.compose import cards, submit_tokens
from tests.api.test_api_posts import png_bytes
from tests.bluesky.posts.test_linkcards import site  # noqa: F401 (a fixture)
from tests.bluesky.posts.test_publishing import records

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
        "submit_token": submit_tokens.new_submit_token(channel.user),  # as the page gives it
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
    assert Media.objects.get().parts.get() == post.parts.all()[0]  # kept a day for another post, then removed

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


SWITCHED_OFF = (
    "Your administrator has switched Bluesky off for now. Posts you publish or schedule wait and go out when it is "
    "switched on again; new channels can be connected then."
)


def test_while_bluesky_is_switched_off_posts_wait_and_every_page_says_so_in_the_same_words(
    alice_client, channel, use_pds, account
):
    from datetime import timedelta

    from django.utils import timezone

    switch = IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    page = text_of(alice_client.get(COMPOSE))
    assert SWITCHED_OFF in page
    assert re.search(rf'value="{channel.pk}"\s+checked', page)  # the channel stays available
    assert "disabled" not in page.split('value="publish"')[1][:20]
    for url in (reverse("integrations:channel-list"), reverse("integrations:channel-detail", args=[channel.pk]), POSTS):
        assert SWITCHED_OFF in text_of(alice_client.get(url)), url

    # Publishing now: accepted, and it waits (saying so); scheduling: accepted as any day.
    response = alice_client.post(COMPOSE, body(channel, "now, once it is back"), follow=True)
    assert f"Saved on @{channel.handle}: {SWITCHED_OFF}" in text_of(response)
    waiting = Post.objects.get()
    assert waiting.status == Post.Status.WAITING and waiting.error_code == "integration_disabled"
    assert waiting.attempts == 0
    when = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    data = body(channel, "tomorrow", scheduled_at=f"{when:%Y-%m-%dT%H:%M}", time_zone="UTC")
    assert alice_client.post(COMPOSE, data).status_code == 302
    assert Post.objects.get(parts__text="tomorrow").status == Post.Status.SCHEDULED
    listing = text_of(alice_client.get(POSTS))
    assert SWITCHED_OFF in listing.split(f'data-post="{waiting.pk}"')[1]  # the post says why it waits
    assert records(use_pds, account.did) == []

    switch.value = "enabled"
    switch.save()
    Post.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert [r["value"]["text"] for r in records(use_pds, account.did)] == ["now, once it is back"]


def test_failed_and_waiting_posts_say_why_and_are_published_again(alice_client, channel, use_pds, account, user):
    failed = accept(user, channel, [PartRequest("failed once")])
    waiting = accept(user, channel, [PartRequest("waiting")])
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
    url = reverse("integrations:post-delete", args=[first.pk])
    for asked in (alice_client.get(url), alice_client.post(url)):  # unconfirmed: the question, nothing deleted
        assert asked.status_code == 200 and "Delete this post here and from Bluesky?" in text_of(asked)
        assert 'name="confirm" value="yes"' in text_of(asked)
    assert len(records(use_pds, account.did)) == 2
    response = alice_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    assert "Deleted the post." in text_of(alice_client.get(POSTS))
    assert [r["value"]["text"] for r in records(use_pds, account.did)] == ["second"]


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


# --- link cards in the composer ----------------------------------------------------------------------------------
@pytest.fixture
def cards_on(settings, site):  # noqa: F811
    """Link cards switched on (the test settings switch them off) and a page with Open Graph tags and an image."""
    from tests.bluesky.posts.test_linkcards import OG_PAGE, png

    settings.INTEGRATIONS_LINK_CARDS = True
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png())
    return site


def card_fields(page: str, index: int = 0) -> dict[str, str]:
    """The link card of part `index` as the page shows it: its hidden choice and URL, its title and description."""
    prefix = f"parts-{index}-"
    found = {}
    for name in ("card", "card_url", "card_title"):
        match = re.search(rf'name="{prefix}{name}" value="([^"]*)"', page) or re.search(
            rf'name="{prefix}{name}"[^>]*value="([^"]*)"', page
        )
        found[name] = match[1] if match else None
    match = re.search(rf'name="{prefix}card_description"[^>]*>\n(.*?)</textarea>', page, re.S)
    found["card_description"] = match[1] if match else None
    return found


def external_of(use_pds, account, post) -> dict | None:
    """The `app.bsky.embed.external` of the post's first record as the PDS holds it (None without an embed)."""
    value = {r["uri"]: r["value"] for r in records(use_pds, account.did)}[post.parts.get(index=0).uri]
    embed = value.get("embed")
    if embed is None:
        return None
    assert embed["$type"] == "app.bsky.embed.external"
    return embed["external"]


def test_preview_shows_the_card_and_the_edited_title_and_description_are_published(
    alice_client, channel, use_pds, account, cards_on
):
    link = f"{cards_on.url}/og"
    page = text_of(alice_client.post(COMPOSE, body(channel, f"Read {link} now", action="preview")))
    assert card_fields(page) == {
        "card": "auto",
        "card_url": link,
        "card_title": "Skyport &amp; friends",
        "card_description": "Publishing to Bluesky, exactly once.",
    }
    thumb = re.search(r'<img class="card-thumb" src="([^"]+)"', page)[1].replace("&amp;", "&")
    assert thumb.startswith("/app/posts/link-card/image?card=") and alice_client.get(thumb).status_code == 200
    assert "Remove card" in page

    # What the page's script sends once the title or description is typed in: "edited", with the card's link.
    data = body(
        channel,
        f"Read {link} now",
        **{
            "parts-0-card": "edited",
            "parts-0-card_url": link,
            "parts-0-card_title": "My own title",
            "parts-0-card_description": "My own words",
        },
    )
    assert alice_client.post(COMPOSE, data).status_code == 302
    post = Post.objects.get()
    assert post.status == Post.Status.PUBLISHED
    external = external_of(use_pds, account, post)
    assert (external["uri"], external["title"], external["description"]) == (link, "My own title", "My own words")
    assert external["thumb"]["mimeType"] == "image/png"  # the page's image, as for the page's own card


def test_without_the_script_an_edited_card_is_noticed_and_an_untouched_one_stays_the_pages(
    alice_client, channel, use_pds, account, cards_on
):
    link = f"{cards_on.url}/og"
    fields = {"parts-0-card": "auto", "parts-0-card_url": link}
    untouched = body(
        channel,
        f"As the page says {link}",
        **fields,
        **{
            "parts-0-card_title": "Skyport & friends",
            "parts-0-card_description": "Publishing to Bluesky, exactly once.",
        },
    )
    assert alice_client.post(COMPOSE, untouched).status_code == 302
    edited = body(
        channel,
        f"Edited in the form {link}",
        **fields,
        **{"parts-0-card_title": "Typed without a script", "parts-0-card_description": ""},
    )
    assert alice_client.post(COMPOSE, edited).status_code == 302
    first, second = Post.objects.order_by("pk")
    assert external_of(use_pds, account, first)["title"] == "Skyport & friends"
    assert (external_of(use_pds, account, second)["title"], external_of(use_pds, account, second)["description"]) == (
        "Typed without a script",
        "",
    )


def test_an_edited_card_for_another_link_gives_way_to_the_new_links_card(alice_client, channel, use_pds, cards_on):
    from integrations.web.compose import forms

    cards_on.routes["/other"] = (200, {"Content-Type": "text/html"}, b"<title>The other page</title>")
    form = forms.PartForm(
        {
            "parts-0-text": f"Now about {cards_on.url}/other",
            "parts-0-card": "edited",
            "parts-0-card_url": f"{cards_on.url}/og",
            "parts-0-card_title": "Old words",
            "parts-0-card_description": "",
        },
        prefix="parts-0",
        user=channel.user,
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["link_card"] == "auto"
    shown = form.card_view()
    assert (shown.mode, shown.url, shown.title) == ("auto", f"{cards_on.url}/other", "The other page")


def test_remove_card_sends_the_post_without_an_embed(alice_client, channel, use_pds, account, cards_on):
    link = f"{cards_on.url}/og"
    # Without the script, "Remove card" is a submit button: the page comes back with the card removed.
    page = text_of(alice_client.post(COMPOSE, body(channel, f"No card for {link}", action="nocard-0")))
    assert card_fields(page)["card"] == "none"
    assert "No link card: you removed it." in page and "errorlist" not in page
    assert re.search(r"data-card-box hidden", page)
    back = text_of(
        alice_client.post(COMPOSE, body(channel, f"No card for {link}", action="card-0", **{"parts-0-card": "none"}))
    )
    assert card_fields(back)["card"] == "auto" and card_fields(back)["card_title"] == "Skyport &amp; friends"

    response = alice_client.post(COMPOSE, body(channel, f"No card for {link}", **{"parts-0-card": "none"}))
    assert response.status_code == 302
    post = Post.objects.get()
    assert post.status == Post.Status.PUBLISHED
    assert external_of(use_pds, account, post) is None
    assert post.parts.get().card is None and post.parts.get().card_note == ""


def test_the_card_endpoint_answers_the_composers_script(alice_client, channel, cards_on):
    from tests.bluesky.posts.test_linkcards import png

    endpoint = reverse("integrations:link-card")
    link = f"{cards_on.url}/og"
    answer = alice_client.post(endpoint, {"text": f"see {link}, it is good"}).json()
    assert answer == {
        "link": link,
        "url": link,
        "title": "Skyport & friends",
        "description": "Publishing to Bluesky, exactly once.",
        "thumb": answer["thumb"],
        "host": cards_on.url.removeprefix("http://"),  # the site as the link names it, its port included
        "note": "",
    }
    assert answer["thumb"].startswith(reverse("integrations:link-card-image") + "?card=")
    image = alice_client.get(answer["thumb"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert image.content == publishing_image(png())
    assert image["X-Content-Type-Options"] == "nosniff"
    assert alice_client.post(endpoint, {"text": "no link here"}).json()["link"] == ""
    broken = alice_client.post(endpoint, {"text": f"{cards_on.url}/missing"}).json()
    assert broken["url"] == "" and broken["note"] == "No link card: the page answered with HTTP status 404."
    missing = cards.thumb_link(channel.user.pk, f"{cards_on.url}/missing")
    assert alice_client.get(missing).status_code == 404
    assert alice_client.get(endpoint).status_code == 405
    assert Client().post(endpoint, {"text": link}).status_code == 302  # signed-in users only
    assert cards_on.requests.count("/og") == 1  # the image came from the card's cache


def publishing_image(data: bytes) -> bytes:
    from integrations.bluesky.posts import images

    return images.prepare(data, max_bytes=images.THUMB_MAX_BYTES).data


def test_a_part_with_images_shows_no_card(alice_client, channel, cards_on):
    data = body(channel, f"Pictures and {cards_on.url}/og", action="preview", **{"parts-0-alt_1": "A pink square"})
    data["parts-0-image_1"] = image()
    page = text_of(alice_client.post(COMPOSE, data))
    assert re.search(r"data-card-box hidden", page)
    assert re.search(r'<p class="small muted" data-card-covered>', page)
    assert cards_on.requests == []  # no page is read for a card that cannot be sent


# --- editing a scheduled post ------------------------------------------------------------------------------------
def scheduled(alice_client, channel, *texts, hours=48, zone="Europe/Berlin", **extra):
    """A post scheduled through the composer, `hours` ahead on the clock of `zone`; returns (post, clock)."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    clock = (timezone.now() + timedelta(hours=hours)).astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)
    data = body(channel, *texts, scheduled_at=f"{clock:%Y-%m-%dT%H:%M}", time_zone=zone, **extra)
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 302, errors_of(response)
    return Post.objects.order_by("-pk").first(), clock


def edit_url(post) -> str:
    return reverse("integrations:post-edit", args=[post.pk])


def test_a_scheduled_post_opens_in_the_composer_and_saving_it_changes_text_and_time(
    alice_client, channel, use_pds, account
):
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    alice_client.cookies["skyport_tz"] = "Europe/Berlin"  # the browser's zone, as clock.js tells it
    post, clock = scheduled(alice_client, channel, f"Draft with {LONG_LINK}", "second part", langs="de")
    assert f'href="{edit_url(post)}"' in text_of(alice_client.get(POSTS))

    page = text_of(alice_client.get(edit_url(post)))
    assert "Edit a scheduled post" in page and "Save changes" in page
    assert re.search(rf'name="parts-0-text"[^>]*>\nDraft with {re.escape(LONG_LINK)}</textarea>', page)  # as written
    assert re.search(r'name="parts-1-text"[^>]*>\nsecond part</textarea>', page)
    assert f'value="{clock:%Y-%m-%dT%H:%M}"' in page and 'value="Europe/Berlin"' in page  # the user's clock
    assert 'name="langs" value="de"' in page
    assert f"@{channel.handle}" in page and 'name="channel"' not in page  # it stays on its channel

    later = clock + timedelta(days=1, hours=2)
    data = body(
        channel, "Final words", langs="de", scheduled_at=f"{later:%Y-%m-%dT%H:%M}", time_zone="America/New_York"
    )
    del data["channel"]
    response = alice_client.post(edit_url(post), data)
    assert response.status_code == 302, errors_of(response)
    assert "Saved the post scheduled on @" in text_of(alice_client.get(POSTS))
    edited = Post.objects.get()
    assert edited.pk == post.pk and edited.status == Post.Status.SCHEDULED and edited.lease_until is None
    assert edited.scheduled_at == later.replace(tzinfo=ZoneInfo("America/New_York"))  # read on the new clock
    assert [part.text for part in edited.parts.all()] == ["Final words"]
    assert edited.parts.get().record["createdAt"].startswith(f"{edited.scheduled_at:%Y-%m-%dT%H:%M}")
    assert records(use_pds, account.did) == []


def test_saving_an_unchanged_scheduled_post_keeps_its_records_and_exact_time(alice_client, channel, user):
    from datetime import timedelta

    from django.utils import timezone

    when = (timezone.now() + timedelta(hours=5)).replace(second=17, microsecond=123456)  # more than the field shows
    post = accept(
        user,
        channel,
        [PartRequest(f"See {LONG_LINK} and example.org/x @{channel.handle}")],
        scheduled_at=when,
    )
    before = post.parts.get()
    page = text_of(alice_client.get(edit_url(post)))
    fields = {name: re.search(rf'name="{name}"[^>]*value="([^"]*)"', page)[1] for name in ("langs", "scheduled_at")}
    assert fields["scheduled_at"].endswith(":17")
    text = re.search(r'name="parts-0-text"[^>]*>\n(.*?)</textarea>', page, re.S)[1]
    assert text == f"See {LONG_LINK} and example.org/x @{channel.handle}"
    data = body(channel, text, langs=fields["langs"], scheduled_at=fields["scheduled_at"], time_zone="")
    del data["channel"]
    assert alice_client.post(edit_url(post), data).status_code == 302
    after = Post.objects.get().parts.get()
    assert Post.objects.get().scheduled_at == when
    assert (after.record["text"], after.record["facets"]) == (before.record["text"], before.record["facets"])


def test_an_edit_keeps_the_cards_choice_and_changes_it(alice_client, channel, use_pds, account, cards_on):
    link = f"{cards_on.url}/og"
    edited_card = {
        "parts-0-card": "edited",
        "parts-0-card_url": link,
        "parts-0-card_title": "Scheduled title",
        "parts-0-card_description": "Scheduled words",
    }
    post, clock = scheduled(alice_client, channel, f"Later: {link}", **edited_card)
    removed, _ = scheduled(alice_client, channel, f"No card: {link}", **{"parts-0-card": "none"})
    assert post.parts.get().card["title"] == "Scheduled title" and removed.parts.get().card is None

    page = text_of(alice_client.get(edit_url(post)))
    assert card_fields(page) == {
        "card": "edited",
        "card_url": link,
        "card_title": "Scheduled title",
        "card_description": "Scheduled words",
    }
    assert card_fields(text_of(alice_client.get(edit_url(removed))))["card"] == "none"

    data = body(
        channel,
        f"Later: {link}",
        scheduled_at=f"{clock:%Y-%m-%dT%H:%M}",
        time_zone="Europe/Berlin",
        **{**edited_card, "parts-0-card_title": "A better title"},
    )
    del data["channel"]
    assert alice_client.post(edit_url(post), data).status_code == 302
    assert Post.objects.get(pk=post.pk).parts.get().card["title"] == "A better title"
    publish_due(Post.objects.get(pk=post.pk).scheduled_at)
    assert external_of(use_pds, account, Post.objects.get(pk=post.pk))["title"] == "A better title"


def test_a_post_that_started_publishing_or_a_past_time_is_refused_and_nothing_changes(alice_client, channel):
    from datetime import timedelta

    from django.utils import timezone

    post, clock = scheduled(alice_client, channel, "as planned")
    stored = Post.objects.get(pk=post.pk)
    plan = [(p.text, p.rkey, p.expected_cid) for p in stored.parts.all()]

    def unchanged() -> bool:
        now = Post.objects.get(pk=post.pk)
        return [(p.text, p.rkey, p.expected_cid) for p in now.parts.all()] == plan and (
            now.scheduled_at,
            now.lease_until,
        ) == (stored.scheduled_at, None)

    past = (timezone.now() - timedelta(hours=1)).astimezone(clock.tzinfo)
    data = body(channel, "changed", scheduled_at=f"{past:%Y-%m-%dT%H:%M}", time_zone="Europe/Berlin")
    del data["channel"]
    response = alice_client.post(edit_url(post), data)
    assert response.status_code == 400 and "already passed" in errors_of(response)
    assert unchanged()

    # A worker starts it while the page is open: saving says so, and the post is left as the worker has it.
    Post.objects.filter(pk=post.pk).update(status=Post.Status.PUBLISHING, attempts=1)
    data["scheduled_at"] = f"{clock + timedelta(hours=1):%Y-%m-%dT%H:%M}"
    response = alice_client.post(edit_url(post), data)
    assert response.status_code == 400
    assert "Only a scheduled post that has not started publishing can be changed" in errors_of(response)
    assert Post.objects.get(pk=post.pk).status == Post.Status.PUBLISHING
    stored.status, stored.attempts = Post.Status.PUBLISHING, 1
    assert [(p.text, p.rkey, p.expected_cid) for p in Post.objects.get(pk=post.pk).parts.all()] == plan
    assert Post.objects.get(pk=post.pk).scheduled_at == stored.scheduled_at
    # ...and the edit page is no longer offered.
    response = alice_client.get(edit_url(post))
    assert response.status_code == 302 and response.url == POSTS
    assert "has not started publishing" in text_of(alice_client.get(POSTS))


def test_another_users_scheduled_post_cannot_be_edited(alice_client, channel, other_user):
    post, clock = scheduled(alice_client, channel, "mine")
    bob = Client()
    bob.force_login(other_user)
    assert bob.get(edit_url(post)).status_code == 404
    data = body(channel, "yours now", scheduled_at=f"{clock:%Y-%m-%dT%H:%M}", time_zone="Europe/Berlin")
    assert bob.post(edit_url(post), data).status_code == 404
    assert Post.objects.get().parts.get().text == "mine"


def test_card_previews_are_limited_per_user(alice_client, channel, cards_on, monkeypatch, django_user_model):
    from integrations.web import cards as views

    monkeypatch.setattr(views, "CARD_PREVIEWS_PER_WINDOW", (2, 300))
    endpoint = reverse("integrations:link-card")
    for _ in range(2):
        assert alice_client.post(endpoint, {"text": f"{cards_on.url}/og"}).status_code == 200
    refused = alice_client.post(endpoint, {"text": f"{cards_on.url}/og"})
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 300
    image = alice_client.get(cards.thumb_link(channel.user.pk, f"{cards_on.url}/og"))
    assert image.status_code == 429
    assert cards_on.requests.count("/og") == 1  # nothing was fetched for the refused ones
    other = Client()
    other.force_login(django_user_model.objects.create_user("carol", password="carol-password-123"))
    assert other.post(endpoint, {"text": f"{cards_on.url}/og"}).status_code == 200  # per user


def test_the_edit_page_says_what_a_scheduled_reply_or_quote_refers_to(alice_client, channel):
    post, _ = scheduled(alice_client, channel, "A reply, later")
    target = f"at://{channel.did}/app.bsky.feed.post/3kabcdefghij2"
    Post.objects.filter(pk=post.pk).update(reply_to_uri=target, quote_uri=target)
    page = text_of(alice_client.get(edit_url(post)))
    assert f'name="reply_to" value="{target}"' in page and f'name="quote" value="{target}"' in page
    assert "data-references open" in page
    assert "There is no post at" in page.split('data-reference="reply_to"')[1]  # gone meanwhile: said, not hidden
    plain, _ = scheduled(alice_client, channel, "Not a reply")
    page = text_of(alice_client.get(edit_url(plain)))
    assert 'name="reply_to" value=' not in page and "data-references open" not in page


def test_posting_too_often_from_the_composer_says_when_to_try_again(alice_client, channel, use_pds, account, settings):
    settings.INTEGRATIONS_POST_RATES = {"user": (1, 60)}
    assert alice_client.post(COMPOSE, body(channel, "first")).status_code == 302
    response = alice_client.post(COMPOSE, body(channel, "second"))
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert "You have sent many posts in a short time. Try again in " in errors_of(response)
    assert re.search(r'name="parts-0-text"[^>]*>\nsecond</textarea>', text_of(response))  # nothing typed is lost
    assert len(records(use_pds, account.did)) == 1


def test_a_page_whose_charset_no_browser_reads_still_gives_a_card_in_the_composer(alice_client, channel, cards_on):
    cards_on.routes["/odd"] = (200, {"Content-Type": "text/html; charset=base64"}, "<title>Café</title>".encode())
    cards_on.routes["/odder"] = (200, {"Content-Type": "text/html"}, b'<meta charset="bz2"><title>Tea</title>')
    answer = alice_client.post(reverse("integrations:link-card"), {"text": f"see {cards_on.url}/odd"})
    assert answer.status_code == 200 and answer.json()["title"] == "Café"
    page = alice_client.post(COMPOSE, body(channel, f"see {cards_on.url}/odder", action="preview"))
    assert page.status_code == 200 and card_fields(text_of(page))["card_title"] == "Tea"
