"""Uploads for posts: storing one (prepared, within the owner's limits), keeping it while a post needs it, and
removing those no post needs any more."""

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from integrations.bluesky.posts import images
from integrations.bluesky.posts.plans import PlannedImage, blob_cid
from integrations.conf import app_settings
from integrations.exceptions import MediaNotFound, StorageFull, TooManyUploads
from integrations.models import Media, Post, PostPart
from integrations.security.throttling import over_rate

logger = logging.getLogger(__name__)

# Uploads no post needs are kept this long after they were uploaded or last attached (a client attaches one upload
# to its posts one after the other), then removed.
UNUSED_MEDIA_KEPT = timedelta(days=1)
PURGE_BATCH = 500
# A post in these states needs no upload any more (a cancelled one stays in its owner's history, never to be sent).
FINISHED = (Post.Status.PUBLISHED, Post.Status.CANCELLED)


def store_media(user: AbstractBaseUser, upload: Any, *, first_frame: bool = False) -> Media:
    """Prepare an uploaded image (content sniffed, metadata removed, within the limits) and keep it for its owner.

    An animated image is refused (`animated_image`: its author chooses) unless `first_frame`: then its first frame
    is kept as a still.
    `too_many_uploads` past `INTEGRATIONS_UPLOADS_PER_HOUR` (every upload counts, a refused one too: it cost the
    work), `storage_full` when it would take the owner past `INTEGRATIONS_MEDIA_BYTES_PER_USER`."""
    retry_after = over_rate("media-upload", str(user.pk), app_settings.UPLOADS_PER_HOUR, 3600)
    if retry_after is not None:
        raise TooManyUploads(retry_after=retry_after)
    prepared = images.prepare(upload, first_frame=first_frame)
    return _stored(user, prepared, "image", hashlib.sha256(prepared.data).hexdigest())


def thumb_media(user: AbstractBaseUser, prepared: Any) -> PlannedImage | None:
    """Keep a card's thumbnail as an upload of the user's, so it is sent as a blob like an image: once per content
    (every post and part linking the same page shares it). None when the user's storage is full."""
    digest = hashlib.sha256(prepared.data).hexdigest()
    media = Media.objects.filter(owner=user, digest=digest).first()
    if media is None:
        try:
            media = _stored(user, prepared, "thumb", digest)
        except StorageFull:
            return None
    return PlannedImage(
        cid=blob_cid(prepared.data),
        mime=media.mime,
        size=media.size,
        width=media.width,
        height=media.height,
        alt="",
        media_id=media.pk,
    )


def _stored(user: AbstractBaseUser, prepared: Any, name: str, digest: str) -> Media:
    """Store prepared image bytes as the user's, within their storage quota."""
    quota = app_settings.MEDIA_BYTES_PER_USER
    stored = Media.objects.filter(owner=user).aggregate(total=Sum("size"))["total"] or 0
    if stored + len(prepared.data) > quota:
        raise StorageFull(f"{quota / 1_000_000:,.0f} MB")
    media = Media(
        owner=user,
        mime=prepared.mime,
        width=prepared.width,
        height=prepared.height,
        size=len(prepared.data),
        digest=digest,
    )
    media.file.save(name, ContentFile(prepared.data), save=False)
    media.save()
    return media


def media_ids(part: PostPart) -> list[int]:
    """The uploads a part's record needs as blobs: its images, then its link card's thumbnail."""
    ids = [image["media"] for image in part.images if image["media"]]
    if part.card and part.card.get("media"):
        ids.append(part.card["media"])
    return ids


def link_media(parts: Sequence[PostPart], due: datetime) -> None:
    """Record which uploads each part needs, so none is removed while the post is not published, and move each
    upload's `used_at` to when the post is due (if later): the clean-up looks only at uploads whose last use is a
    day past. Call inside the transaction that stores the parts. Marking them locks their rows: the clean-up either
    waits for this transaction (and then sees them in use) or has removed one already (`MediaNotFound`)."""
    links = [(part.pk, media_id) for part in parts for media_id in dict.fromkeys(media_ids(part))]
    if not links:
        return
    wanted = {media_id for _, media_id in links}
    marked = Media.objects.filter(pk__in=wanted).update(used_at=Greatest("used_at", Value(due)))
    if marked < len(wanted):
        raise MediaNotFound()  # removed by the clean-up while the post was being checked
    through = PostPart.media.through
    through.objects.bulk_create(
        [through(postpart_id=part_id, media_id=media_id) for part_id, media_id in links], ignore_conflicts=True
    )


def media_in_use() -> Exists:
    """Whether a post that is not published yet uses the upload (to use in a filter on `Media`)."""
    links = PostPart.media.through.objects.filter(media_id=OuterRef("pk"))
    return Exists(links.exclude(postpart__post__status__in=FINISHED))


def unused_media(cutoff: datetime) -> "QuerySet[Media]":
    """The uploads whose last use (upload, or the time of the last post attached) is before `cutoff` and that no
    unpublished post uses (a post that is late, waiting or failed still does), oldest first."""
    return Media.objects.filter(used_at__lt=cutoff).filter(~media_in_use()).order_by("used_at")


def purge_unused_media(older_than: timedelta = UNUSED_MEDIA_KEPT) -> int:
    """Delete the uploads that no unpublished post uses and that were not uploaded or attached within `older_than`;
    return how many.

    Only the stale uploads are looked at (`Media.used_at`, indexed; a scheduled post moves it to its time), each
    checked through its links (`PostPart.media`) to the posts using it: the cost follows the uploads removed, not
    the posts stored. The rows
    are deleted under their row locks (a post attaching one meanwhile waits, then finds it gone: `media_not_found`),
    and their files after the commit (a file that cannot be deleted is left behind, never a row without its file).
    """
    cutoff = timezone.now() - older_than
    storage = Media._meta.get_field("file").storage
    removed = 0
    while True:
        with transaction.atomic():
            batch = list(unused_media(cutoff).select_for_update().values_list("pk", "file")[:PURGE_BATCH])
            if batch:
                Media.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
        for _, name in batch:
            try:
                storage.delete(name)
            except OSError:
                logger.warning("could not delete the file of a removed upload: %s", name, exc_info=True)
        removed += len(batch)
        if len(batch) < PURGE_BATCH:
            return removed
