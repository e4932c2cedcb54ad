"""Scheduled posts: checking a time, and cancelling or moving a post that never started.

A scheduled post (`scheduled_at`) is stored `scheduled`, not claimed; its plan carries its time as createdAt. Until
its first attempt it can be cancelled, rescheduled or edited (its plan recomputed: nothing was ever sent, so a new
plan cannot publish twice). `posting.due` claims due posts in batches: on PostgreSQL with
`select_for_update(skip_locked=True)` (two workers never take the same row, nor wait for each other), on SQLite under
the write lock (`transaction_mode=IMMEDIATE`), each with a lease. A scheduled post whose channel cannot publish when
it falls due waits with the reason and goes out when the channel (or the integration) is back, unless it is more
than `INTEGRATIONS_SCHEDULE_MISSED_AFTER` late: then it fails as `missed`.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from integrations.bluesky.posts.replan import replan
from integrations.exceptions import ScheduledInThePast, ScheduledTooFar
from integrations.models import Post
from integrations.posting import signals
from integrations.posting.lease import locked_scheduled

logger = logging.getLogger(__name__)

# A scheduled time must be at least this far ahead when it is set.
SCHEDULE_MIN_LEAD = timedelta(seconds=1)
# ...and at most this far (record keys are TIDs, which end in 2255; a year is plenty).
SCHEDULE_MAX_AHEAD = timedelta(days=366)


def check_schedule(when: datetime) -> None:
    """Refuse a time that has passed or is only a moment away (`scheduled_in_the_past`), or is more than a year
    ahead (`scheduled_too_far`)."""
    now = timezone.now()
    if when <= now + SCHEDULE_MIN_LEAD:
        raise ScheduledInThePast()
    if when > now + SCHEDULE_MAX_AHEAD:
        raise ScheduledTooFar()


def cancel(post: Post, *, keep: bool = True) -> Post:
    """Cancel a scheduled post that has not started publishing: nothing was sent, so nothing is deleted upstream.

    It stays in its owner's history as `cancelled` (its text kept; its uploads no longer held for it: the clean-up
    removes them once no other post uses them), or with `keep=False` it is deleted altogether. Returns the post as
    stored (unsaved, without a key, when deleted)."""
    post_id = post.pk
    with transaction.atomic():
        post = locked_scheduled(post_id)
        signals.cancel_wake_ups(post)  # as they were stored: a wake-up at its time, a retry still waiting
        # Its uploads stay for other posts (`purge_unused_media` removes them once none uses them).
        if keep:
            post.mark_cancelled()
        else:
            post.delete()
    logger.info("scheduled post %s cancelled%s", post_id, "" if keep else " and deleted")
    return post


def reschedule(post: Post, when: datetime) -> Post:
    """Move a scheduled post to another time; its plan is recomputed for it (keys and createdAt).

    A post's plan may be recomputed only while it has never been attempted: nothing of it can be on Bluesky, so
    the new plan cannot publish twice. The row lock makes sure no worker starts it meanwhile.
    """
    check_schedule(when)
    with transaction.atomic():
        post = locked_scheduled(post.pk)
        signals.cancel_wake_ups(post)  # the wake-up at the old time
        replan(post, when)
        post.scheduled_at = when
        post.save(update_fields=["scheduled_at"])
        signals.wake_at(post)
    return post
