"""Uploads shared by several posts live as long as one of them needs them; quotas per user; a link card's thumbnail
stored once; the clean-up in SQL (issue 16 items 5 and 7, issue 24's media clean-up row)."""

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from integrations.bluesky import services
from integrations.bluesky.posts import media as post_media
from integrations.bluesky.posts.accept import ImageRequest, PartRequest, accept, edit
from integrations.bluesky.posts.cards import build_pending_cards
from integrations.bluesky.posts.deletion import delete
from integrations.bluesky.posts.media import purge_unused_media, store_media, unused_media
from integrations.bluesky.posts.plans import PartInput
from integrations.bluesky.posts.schedule import cancel
from integrations.bluesky.posts.store import create_post
from integrations.bluesky.posts.submit import publish, publish_due
from integrations.exceptions import MediaNotFound, StorageFull, TooManyScheduled, TooManyUploads
from integrations.models import Media, Post
from tests.api.test_api import assert_error
from tests.bluesky.posts.test_linkcards import OG_PAGE, png, site  # noqa: F401 (a fixture)
from tests.web.test_posts_web import COMPOSE, body, errors_of

pytestmark = [pytest.mark.pds, pytest.mark.django_db]


def picture(colour: str = "navy", width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def upload(user, colour: str = "navy") -> Media:
    return store_media(user, SimpleUploadedFile("x.png", picture(colour)))


def with_image(text: str, media: Media) -> list[PartRequest]:
    return [PartRequest(text=text, images=(ImageRequest(media.pk, "a picture"),), link_card=None)]


@pytest.fixture
def second_channel(use_pds, user):
    """The same user's channel on another account (another repository)."""
    other = use_pds.create_account()
    use_pds.create_app_password(other)
    return services.connect(user, other.handle, other.app_passwords[0])


def blob_in_repo(pds, did: str, record_uri: str) -> bool:
    from tests.bluesky.posts.test_publishing import records

    value = {r["uri"]: r["value"] for r in records(pds, did)}[record_uri]
    cid = value["embed"]["images"][0]["image"]["ref"]["$link"]
    return pds.xrpc("GET", "com.atproto.sync.getBlob", params={"did": did, "cid": cid}).status_code == 200


# --- one upload, several posts ---------------------------------------------------------------------------------
def test_one_upload_goes_out_on_two_channels_one_now_and_one_later(use_pds, user, channel, second_channel):
    """Publishing the first post used to discard the upload: the second failed for good at its time ("Could not
    find blob"), and publishing it again could not help."""
    media = upload(user)
    now = accept(user, channel, with_image("now", media))
    later = accept(user, second_channel, with_image("later", media), scheduled_at=timezone.now() + timedelta(hours=1))
    assert publish(now.pk, claimed=now).post.status == Post.Status.PUBLISHED
    assert purge_unused_media(older_than=timedelta(0)) == 0  # the scheduled post still needs it
    Post.objects.filter(pk=later.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    later.refresh_from_db()
    assert blob_in_repo(use_pds, second_channel.did, later.parts.get().uri)


@pytest.mark.parametrize("how", ["cancel", "delete"])
def test_cancelling_or_deleting_one_post_keeps_the_upload_another_needs(how, use_pds, user, channel, second_channel):
    media = upload(user)
    when = timezone.now() + timedelta(hours=1)
    first = accept(user, channel, with_image("first", media), scheduled_at=when)
    second = accept(user, second_channel, with_image("second", media), scheduled_at=when)
    if how == "cancel":
        cancel(first)
    else:
        delete(Post.objects.get(pk=first.pk))
    assert purge_unused_media(older_than=timedelta(0)) == 0
    Post.objects.filter(pk=second.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    assert publish_due() == {Post.Status.PUBLISHED: 1}


def test_a_failed_post_keeps_its_upload_so_publishing_it_again_works(use_pds, user, channel):
    from integrations.models import Channel

    media = upload(user)
    post = accept(user, channel, with_image("will fail", media))
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    Post.objects.filter(pk=post.pk).update(lease_until=None, attempts=0)  # as if its worker had not started yet
    assert publish(post.pk).post.status == Post.Status.FAILED
    Media.objects.update(used_at=timezone.now() - timedelta(days=30))
    assert purge_unused_media() == 0
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.ACTIVE)
    assert publish(post.pk, retry=True).post.status == Post.Status.PUBLISHED


def test_an_upload_removed_while_its_post_was_checked_is_said_and_nothing_is_stored(user, channel, monkeypatch):
    """The clean-up and a post attaching a day-old upload at the same moment: the post is refused in words rather
    than stored without its image."""
    media = upload(user)
    Media.objects.filter(pk=media.pk).update(used_at=timezone.now() - timedelta(days=2))
    link = post_media.link_media

    def purge_first(*args, **kwargs):
        assert purge_unused_media() == 1
        return link(*args, **kwargs)

    monkeypatch.setattr(post_media, "link_media", purge_first)
    with pytest.raises(MediaNotFound):
        accept(user, channel, with_image("too late", media))
    assert not Post.objects.exists()


# --- the clean-up in SQL ---------------------------------------------------------------------------------------
def make_stale(count: int, user) -> None:
    for index in range(count):
        upload(user, colour=(index * 7 % 256, 40, 90))
    Media.objects.update(used_at=timezone.now() - timedelta(days=2))


@pytest.mark.parametrize("count", [3, 30])
def test_the_clean_up_costs_the_same_queries_for_3_or_30_uploads_whatever_the_posts(count, user, channel):
    for index in range(40):  # posts that are no concern of the clean-up: none is read
        create_post(user, channel, [PartInput(text=f"post {index}")])
    make_stale(count, user)
    with CaptureQueriesContext(connection) as queries:
        assert purge_unused_media() == count
    assert len(queries) <= 6, [query["sql"] for query in queries]
    assert not Media.objects.exists()


def test_the_clean_up_looks_only_at_stale_uploads_through_indexes_on_postgresql(user, channel):
    """With many posts in use and a few stale uploads (statistics fresh), the plan starts from the stale uploads
    (the `used_at` index) and looks each one up among the posts' links by index: no scan of posts or parts."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL plan")
    from integrations.models import PostPart

    make_stale(3, user)
    # 3,000 scheduled posts, each with its own upload: as `create_post` marks it, used at the post's time.
    when = timezone.now() + timedelta(days=3)
    in_use = Media.objects.bulk_create(
        Media(owner=user, file=f"x/{index}", mime="image/png", width=1, height=1, size=1, used_at=when)
        for index in range(3000)
    )
    posts = Post.objects.bulk_create(
        Post(user=user, channel=channel, status=Post.Status.SCHEDULED, scheduled_at=when) for _ in range(3000)
    )
    parts = PostPart.objects.bulk_create(
        PostPart(post=post, index=0, text="x", rkey=f"k{post.pk}", record={}, expected_cid="c") for post in posts
    )
    through = PostPart.media.through
    through.objects.bulk_create(
        through(postpart_id=part.pk, media_id=media.pk) for part, media in zip(parts, in_use, strict=True)
    )
    with connection.cursor() as cursor:
        for table in ("media", "post", "postpart", "postpart_media"):
            cursor.execute(f"ANALYZE integrations_{table}")
    plan = unused_media(timezone.now() - timedelta(days=1)).values_list("pk", "file")[:500].explain()
    assert "Seq Scan" not in plan, plan
    assert "integrations_media_used_at" in plan, plan  # starts from the stale uploads
    assert "Index Cond: (media_id = integrations_media.id)" in plan, plan  # each looked up among the links
    assert purge_unused_media() == 3


# --- quotas ----------------------------------------------------------------------------------------------------
def test_uploads_per_hour_are_limited_per_user_in_the_api_and_the_composer(api, user, channel, settings):
    settings.INTEGRATIONS_UPLOADS_PER_HOUR = 2
    for colour in ("red", "green"):
        response = api.post("/api/v1/media/", {"file": SimpleUploadedFile("x.png", picture(colour))})
        assert response.status_code == 201, response.content
    response = api.post("/api/v1/media/", {"file": SimpleUploadedFile("x.png", picture("blue"))})
    error = assert_error(response, 429, "too_many_uploads")
    assert int(response["Retry-After"]) > 0 and "in an hour" in error["message"]
    with pytest.raises(TooManyUploads):
        upload(user, "white")
    assert Media.objects.count() == 2


def test_the_composer_says_when_uploads_are_used_up(alice_client, channel, settings):
    settings.INTEGRATIONS_UPLOADS_PER_HOUR = 0
    data = body(channel, "pic", action="preview", **{"parts-0-alt_1": "x"})
    data["parts-0-image_1"] = SimpleUploadedFile("x.png", picture())
    response = alice_client.post(COMPOSE, data)
    assert response.status_code == 400
    assert "You uploaded the most images allowed in an hour" in errors_of(response)
    assert not Media.objects.exists()


def test_bytes_stored_are_limited_per_user(api, user, other_user, settings):
    first = upload(user, "red")
    settings.INTEGRATIONS_MEDIA_BYTES_PER_USER = first.size + 10
    response = api.post("/api/v1/media/", {"file": SimpleUploadedFile("x.png", picture("green"))})
    error = assert_error(response, 413, "storage_full")
    assert "removed a day after the last post using it" in error["message"]
    with pytest.raises(StorageFull):
        upload(user, "blue")
    assert upload(other_user, "blue")  # another user's quota is their own


def test_scheduled_posts_are_limited_per_user_and_the_error_says_when_one_frees_up(user, channel, settings, api):
    settings.INTEGRATIONS_SCHEDULED_POSTS_PER_USER = 2
    soon = timezone.now() + timedelta(minutes=30)
    for offset in (0, 10):
        accept(user, channel, [PartRequest(text="x", link_card=None)], scheduled_at=soon + timedelta(minutes=offset))
    with pytest.raises(TooManyScheduled) as caught:
        accept(user, channel, [PartRequest(text="x", link_card=None)], scheduled_at=soon + timedelta(hours=1))
    assert 1700 <= caught.value.retry_after <= 1800
    later = (soon + timedelta(hours=2)).isoformat()
    response = api.post(
        "/api/v1/posts/", {"channel": channel.pk, "parts": [{"text": "x"}], "scheduled_at": later}, format="json"
    )
    error = assert_error(response, 429, "too_many_scheduled")
    assert "You have 2 posts scheduled" in error["message"]
    first = Post.objects.filter(status=Post.Status.SCHEDULED).first()
    assert edit(first, [PartRequest(text="edited", link_card=None)])  # an edit is no new post
    cancel(first)
    assert accept(user, channel, [PartRequest(text="x", link_card=None)], scheduled_at=soon + timedelta(hours=1))


# --- thumbnails stored once ------------------------------------------------------------------------------------
def test_a_card_thumbnail_is_stored_once_however_many_parts_and_posts_link_its_page(
    user,
    channel,
    settings,
    site,  # noqa: F811
):
    settings.INTEGRATIONS_LINK_CARDS = True
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png())
    link = f"{site.url}/og"
    when = timezone.now() + timedelta(hours=1)
    thread = [PartRequest(text=f"part {index}: {link}") for index in range(5)]
    first = accept(user, channel, thread, scheduled_at=when)
    second = accept(user, channel, [PartRequest(text=f"again {link}")], scheduled_at=when)
    for post in (first, second):  # what the worker does soon after (the cards of a scheduled post wait for it)
        build_pending_cards(post.pk)
    thumb = Media.objects.get()  # one file for six cards
    for post in (first, second):
        for part in post.parts.all():
            assert part.card["media"] == thumb.pk and part.record["embed"]["external"]["thumb"]["size"] == thumb.size
    assert thumb.parts.count() == 6
    cancel(first)
    assert purge_unused_media(older_than=timedelta(0)) == 0  # the second post still needs it


def test_a_full_storage_leaves_the_card_without_a_thumbnail_and_says_why(user, channel, settings, site):  # noqa: F811
    settings.INTEGRATIONS_LINK_CARDS = True
    settings.INTEGRATIONS_MEDIA_BYTES_PER_USER = 10
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png())
    post = accept(
        user, channel, [PartRequest(text=f"see {site.url}/og")], scheduled_at=timezone.now() + timedelta(hours=1)
    )
    build_pending_cards(post.pk)
    part = post.parts.get()
    assert part.card["media"] is None and "thumb" not in part.record["embed"]["external"]
    assert part.card_note == "No thumbnail: your storage for images is full."
    assert not Media.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_links_unpublished_posts_to_the_uploads_their_json_names(user, channel):
    """Posts stored before the link table existed keep their uploads: the migration reads their parts' JSON."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before = [("integrations", "0009_post_cancelled")]
    latest = executor.loader.graph.leaf_nodes("integrations")
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldMedia, OldPost, OldPart = (old.get_model("integrations", name) for name in ("Media", "Post", "PostPart"))
    made = timezone.now() - timedelta(days=3)
    image, thumb, orphan = (
        OldMedia.objects.create(
            owner_id=user.pk, file=f"x/{n}", mime="image/png", width=1, height=1, size=1, created_at=made
        )
        for n in range(3)
    )
    due = timezone.now() + timedelta(days=7)
    for status, text in (("scheduled", "later"), ("published", "done")):
        post = OldPost.objects.create(
            user_id=user.pk, channel_id=channel.pk, status=status, scheduled_at=due if status == "scheduled" else None
        )
        OldPart.objects.create(
            post=post,
            index=0,
            text=text,
            images=[{"media": image.pk, "alt": "a"}, {"media": 999_999, "alt": "gone"}],
            card={"uri": "https://example.com", "title": "t", "description": "", "media": thumb.pk},
            rkey=f"k{post.pk}",
            record={},
            expected_cid="c",
        )
    executor = MigrationExecutor(connection)
    executor.migrate(latest)
    later = Post.objects.get(status="scheduled").parts.get()
    assert sorted(later.media.values_list("pk", flat=True)) == sorted([image.pk, thumb.pk])
    assert not Post.objects.get(status="published").parts.get().media.exists()
    assert Media.objects.get(pk=orphan.pk).used_at == made
    # The uploads the scheduled post needs count as used at its time: the clean-up does not walk them until then.
    assert set(Media.objects.filter(pk__in=[image.pk, thumb.pk]).values_list("used_at", flat=True)) == {due}
    assert list(unused_media(timezone.now()).values_list("pk", flat=True)) == [orphan.pk]
    assert purge_unused_media() == 1  # only the upload no unpublished post needs
    assert sorted(Media.objects.values_list("pk", flat=True)) == sorted([image.pk, thumb.pk])
