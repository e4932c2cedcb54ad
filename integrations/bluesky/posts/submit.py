"""Publishing a post on its channel, exactly once: one attempt, and reconciliation after an ambiguous failure.

- `publish` claims the post under its row lock with a lease (a second worker leaves it alone; a dead worker's lease
  runs out), uploads the blobs (re-uploading the same bytes is harmless), then writes every record that is not
  known to be there in one `applyWrites` (all or nothing) through the session door (`door.call`).
- After an ambiguous failure (timeout, reset, a 5xx: the write may have landed), and before every later attempt,
  the planned keys are read back (`getRecord`): a record with the planned CID is published; the rest are written.
  The reference PDS answers an already-used key with a 500, which is reconciled the same way, never blindly retried.
- Temporary faults are retried by a background task with backoff (about an hour in all; a 429's Retry-After is
  honoured: `posting.retry`); permanent refusals fail the post with the PDS's reason; a channel that needs
  reconnection fails it with that reason and a retry after reconnecting publishes the same plan.
"""

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from integrations.adapter import describe
from integrations.bluesky.accounts import door
from integrations.bluesky.posts.cards import is_pending, settle_pending_cards
from integrations.bluesky.posts.deletion import delete_records, deletion_failed
from integrations.bluesky.posts.media import media_ids
from integrations.bluesky.posts.plans import POST_COLLECTION
from integrations.bluesky.posts.readiness import ensure_can_publish
from integrations.bluesky.xrpc import errors
from integrations.exceptions import IntegrationError, PostGone
from integrations.models import Channel, Media, Post, PostPart
from integrations.posting import due
from integrations.posting import retry as retry_policy
from integrations.posting.lease import DeletionRequested, claim
from integrations.signals import post_published, send_on_commit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What an attempt did: the post as stored now, and the error when it did not publish."""

    post: Post
    error: IntegrationError | None = None


def publish(post_id: int, *, retry: bool = False, claimed: Post | None = None) -> Outcome:
    """One attempt at publishing a post (see the module's docstring); the post's new state is stored.

    `claimed`: the post as `store.store_claimed` or `accept.accept` returned it, already taken for this attempt.
    """
    fresh = claimed is not None and claimed.pk == post_id
    if fresh and claimed.status != Post.Status.PUBLISHING:
        return Outcome(claimed)  # accepted to wait (the integration is switched off): nothing to attempt now
    post = claimed if fresh else claim(post_id, retry=retry)
    if post is None:
        published = Post.objects.filter(pk=post_id).first()
        if published is None:
            raise PostGone()
        return Outcome(published)
    channel = post.channel
    # A post just accepted carries its parts (and was just checked): no second read of either. One `claim_due`
    # took carries neither.
    parts = getattr(post, "planned_parts", None) if fresh else None
    checked = parts is not None
    parts = parts if parts is not None else list(post.parts.all())
    try:
        return _attempt(post, channel, parts, checked=checked)
    except DeletionRequested:
        return _delete_instead(post, channel, parts)


def publish_due(now: datetime | None = None) -> Counter:
    """One attempt at every due post (`posting.due.publish_due`); what happened, counted by the posts' new status."""
    return due.publish_due(lambda post: publish(post.pk, claimed=post).post, now)


def retry_delay(attempts: int, error: IntegrationError) -> int | None:
    """Seconds until the next attempt after a temporary fault, or None when the post should fail for good.

    A rate limit (Bluesky's write budget: 5,000 points an hour, 35,000 a day) delays a post as long as it says,
    however often: it never fails one. Other faults get about an hour of attempts.
    """
    return retry_policy.retry_delay(attempts, error, rate_limited=isinstance(error, errors.RateLimited))


def _attempt(post: Post, channel: Channel, parts: Sequence[PostPart], *, checked: bool) -> Outcome:
    try:
        if not checked:
            ensure_can_publish(channel)
        if any(is_pending(part) for part in parts):
            parts = settle_pending_cards(post, parts)
        _upload_blobs(channel, parts)
        if Post.objects.filter(pk=post.pk, status=Post.Status.DELETING).exists():
            raise DeletionRequested()  # deleted while the blobs went up: nothing is written
        _write(channel, parts, reconcile_first=post.attempts > 1)
    except IntegrationError as exc:
        if isinstance(exc, errors.TemporaryError) or exc.temporary:
            # The write may have landed: look before deciding (a second failure leaves it for the next attempt).
            try:
                if _reconcile(channel, parts):
                    return Outcome(_published(post, parts))
            except IntegrationError as again:
                logger.info("could not reconcile post %s after %s (%s)", post.pk, exc.code, again.code)
        rate_limited = isinstance(exc, errors.RateLimited)
        return Outcome(retry_policy.failed_attempt(post, exc, rate_limited=rate_limited), exc)
    return Outcome(_published(post, parts))


def _delete_instead(post: Post, channel: Channel, parts: Sequence[PostPart]) -> Outcome:
    """End an attempt whose post was deleted meanwhile: delete every record of it that landed, then the post (this
    attempt still holds the lease, so nothing else touches it). Should Bluesky not answer, the post stays marked
    for deletion with the reason, and its owner's next delete finishes it."""
    post.status = Post.Status.DELETING
    try:
        delete_records(channel, parts)
    except IntegrationError as exc:
        deletion_failed(post, exc)
        return Outcome(post, exc)
    Post.objects.filter(pk=post.pk).delete()
    logger.info("post %s deleted during its attempt, with every record that landed", post.pk)
    post.error_code, post.error_message = PostGone.code, describe(PostGone()).message
    return Outcome(post, PostGone())


def _upload_blobs(channel: Channel, parts: Sequence[PostPart]) -> None:
    """Upload every image and card thumbnail of the post (the same bytes always give the same blob, so this is safe
    to repeat)."""
    for part in parts:
        if part.uri:
            continue
        for media_id in media_ids(part):
            media = Media.objects.filter(pk=media_id).first()
            if media is None:
                continue  # published earlier and cleaned up: its blob is already in the repo
            with media.file.open("rb") as handle:
                data = handle.read()
            cid = door.call(channel, lambda client, token, d=data, m=media.mime: client.upload_blob(token, d, m))
            logger.debug("uploaded blob %s for post %s", cid, part.post_id)


def _reconcile(channel: Channel, parts: Sequence[PostPart]) -> bool:
    """Read back every planned key not yet known to be written; mark those holding the planned record. True when
    every part is there. A key holding another record is a conflict, never overwritten."""
    for part in parts:
        if part.uri:
            continue
        cid = door.call(
            channel, lambda client, token, key=part.rkey: client.record_cid(token, channel.did, POST_COLLECTION, key)
        )
        if cid is None:
            continue
        if cid != part.expected_cid:
            raise errors.RecordConflict(f"{part.rkey} holds {cid}, not the planned {part.expected_cid}")
        part.uri, part.cid = _uri(channel, part), cid
        part.save(update_fields=["uri", "cid"])
    return all(part.uri for part in parts)


def _uri(channel: Channel, part: PostPart) -> str:
    return f"at://{channel.did}/{POST_COLLECTION}/{part.rkey}"


def _write(channel: Channel, parts: Sequence[PostPart], *, reconcile_first: bool) -> None:
    """Write the records still missing in one atomic applyWrites."""
    if reconcile_first and _reconcile(channel, parts):
        return
    missing = [part for part in parts if not part.uri]
    if not missing:
        return
    writes = [
        {
            "$type": "com.atproto.repo.applyWrites#create",
            "collection": POST_COLLECTION,
            "rkey": p.rkey,
            "value": p.record,
        }
        for p in missing
    ]
    results = door.call(channel, lambda client, token: client.apply_writes(token, channel.did, writes))
    for part, result in zip(missing, results + [{}] * (len(missing) - len(results)), strict=True):
        cid = str(result.get("cid") or part.expected_cid)
        if cid != part.expected_cid:
            logger.warning("post part %s landed with cid %s, planned %s", part.pk, cid, part.expected_cid)
        part.uri, part.cid = str(result.get("uri") or _uri(channel, part)), cid  # stored with the post's new state


def _published(post: Post, parts: Sequence[PostPart]) -> Post:
    # The uploads stay: another post may use them (`purge_unused_media` removes them once none does).
    with transaction.atomic():
        for part in parts:  # a thread is short: plain updates cost less than bulk_update's CASE expressions
            PostPart.objects.filter(pk=part.pk).update(uri=part.uri, cid=part.cid)
        if not post.mark_published():
            raise DeletionRequested()
        send_on_commit(post_published, Post, post=post)
    logger.info("post %s published: %s", post.pk, ", ".join(part.uri for part in parts))
    return post
