"""Taking a post under its row lock: for one attempt (with a lease: a second worker leaves it alone, a dead worker's
lease runs out), or, while it is scheduled and never attempted, to change it."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from integrations.exceptions import PostBusy, PostGone, PostNotRetryable, PostNotScheduled
from integrations.models import Post

LEASE = timedelta(minutes=2)


class DeletionRequested(Exception):
    """The owner deleted the post during this attempt (`delete` marked it): the attempt deletes it instead."""


def locked(post_id: int) -> Post:
    """The post under its row lock (call inside a transaction); `PostGone` when it was deleted meanwhile."""
    post = Post.objects.select_for_update().select_related("channel").filter(pk=post_id).first()
    if post is None:
        raise PostGone()
    return post


def claim(post_id: int, *, retry: bool) -> Post | None:
    """Take the post for one attempt under its row lock; None when there is nothing to do (already published)."""
    with transaction.atomic():
        post = locked(post_id)
        now = timezone.now()
        if post.status == Post.Status.PUBLISHED:
            return None
        if post.status == Post.Status.DELETING:
            raise PostGone()
        if post.lease_until and post.lease_until > now:
            raise PostBusy(retry_after=int((post.lease_until - now).total_seconds()) + 1)
        abandoned = post.status == Post.Status.PUBLISHING and post.attempts > 0  # a dead worker's lease ran out
        if retry and post.status not in (Post.Status.FAILED, Post.Status.WAITING) and not abandoned:
            raise PostNotRetryable()
        post.start_attempt(now + LEASE)
    return post


def locked_scheduled(post_id: int, *, held: bool = False) -> Post:
    """The post under its row lock (call inside a transaction), if it is still scheduled and never attempted.

    `held`: the caller holds it for an edit (its lease); otherwise a running lease means a worker has it."""
    post = locked(post_id)
    if post.status != Post.Status.SCHEDULED or post.attempts:
        raise PostNotScheduled()
    now = timezone.now()
    if not held and post.lease_until and post.lease_until > now:
        raise PostBusy(retry_after=int((post.lease_until - now).total_seconds()) + 1)
    return post


def hold_scheduled(post_id: int) -> Post:
    """Hold a scheduled, never attempted post with a lease while an edit of it is checked, so no worker starts it
    meanwhile (`Post.release_hold` lets go when the edit does not go through)."""
    with transaction.atomic():
        held = locked_scheduled(post_id)
        held.hold(timezone.now() + LEASE)
    return held
