"""Deleting a post: first, from Bluesky, every record of it that landed, then the post."""

import logging
import time
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from integrations.adapter import describe
from integrations.bluesky.accounts import door
from integrations.bluesky.posts.plans import POST_COLLECTION
from integrations.exceptions import IntegrationError, PostDeleting
from integrations.models import Channel, Post, PostPart
from integrations.posting import signals
from integrations.posting.lease import LEASE, locked

logger = logging.getLogger(__name__)

# How long a delete waits for an attempt that is running (an attempt takes seconds; its lease, two minutes at most).
DELETE_WAIT = 15.0
_DELETE_POLL = 0.2


def delete(post: Post) -> None:
    """Delete a post: first, from Bluesky, every record of it that landed, then the post. A scheduled post that was
    never attempted is simply removed (nothing was sent).

    A delete never races an attempt: under the post's row lock it is marked `deleting`, so no attempt starts any
    more. When none is running, this takes the post's lease and deletes. When one is running, that attempt writes
    nothing more if it has not written yet and, when it ends, deletes every record that landed and the post; this
    waits for it (`DELETE_WAIT`), then answers `PostDeleting` if it is still running. The records are read back
    before they are deleted (`getRecord`), so one that landed although its answer was lost goes too, and a record
    of someone else's under a planned key is left alone. If Bluesky cannot be reached, the post stays `deleting`
    with the reason, and deleting it again finishes the job.
    """
    deadline = time.monotonic() + DELETE_WAIT
    while True:
        row, running = _mark_deleting(post.pk)
        if row is None:
            return
        if not running:
            _delete_now(row)
            return
        if not _wait_for_attempt(row.pk, deadline):
            return  # the attempt deleted it
        if time.monotonic() >= deadline:
            lease = Post.objects.filter(pk=row.pk).values_list("lease_until", flat=True).first()
            wait = int((lease - timezone.now()).total_seconds()) + 1 if lease else 1
            raise PostDeleting(retry_after=max(wait, 1))


def _mark_deleting(post_id: int) -> tuple[Post | None, bool]:
    """Under the post's row lock: remove a scheduled post never attempted (None), or mark it `deleting`, taking its
    lease unless an attempt holds it; the post, and whether an attempt is running."""
    with transaction.atomic():
        row = locked(post_id)
        now = timezone.now()
        if row.status == Post.Status.SCHEDULED and not row.attempts:
            signals.cancel_wake_ups(row)  # as they were stored: a wake-up at its time
            row.delete()  # nothing was ever sent (an edit that holds it will find it gone)
            logger.info("scheduled post %s deleted", row.pk)
            return None, False
        running = row.lease_until is not None and row.lease_until > now
        row.mark_deleting(None if running else now + LEASE)
    return row, running


def _wait_for_attempt(post_id: int, deadline: float) -> bool:
    """Wait until the attempt holding the post ends (or `deadline`); False when the post is gone meanwhile."""
    while time.monotonic() < deadline:
        row = Post.objects.filter(pk=post_id).values_list("lease_until", flat=True)
        if not row:
            return False
        if row[0] is None or row[0] <= timezone.now():
            return True
        time.sleep(_DELETE_POLL)
    return Post.objects.filter(pk=post_id).exists()


def _delete_now(post: Post) -> None:
    """With the post's lease held: its records from Bluesky, then the post; on failure the post stays `deleting`
    with the reason (lease released) and the error is raised."""
    parts = list(post.parts.all())
    try:
        if post.attempts:
            delete_records(post.channel, parts)
    except IntegrationError as exc:
        deletion_failed(post, exc)
        raise
    with transaction.atomic():
        signals.cancel_wake_ups(post)  # a retry still waiting
        post.delete()
    logger.info("post %s deleted", post.pk)


def delete_records(channel: Channel, parts: Sequence[PostPart]) -> None:
    """Delete every planned record that holds this post's record, replies first (none outlives its parent); a key
    that is empty is skipped, and one holding another record is left as it is."""
    for part in sorted(parts, key=lambda part: part.index, reverse=True):
        cid = door.call(
            channel, lambda client, token, key=part.rkey: client.record_cid(token, channel.did, POST_COLLECTION, key)
        )
        if cid is None:
            continue
        if cid != part.expected_cid:
            logger.warning("post part %s: key %s holds another record (%s); left as it is", part.pk, part.rkey, cid)
            continue
        door.call(
            channel, lambda client, token, key=part.rkey: client.delete_record(token, channel.did, POST_COLLECTION, key)
        )


def deletion_failed(post: Post, error: IntegrationError) -> None:
    """Keep a post whose records could not all be deleted yet `deleting`, with the reason."""
    post.mark_deletion_failed(error.code, describe(error).message)
    logger.info("post %s could not be deleted from Bluesky yet (%s)", post.pk, error.code)
