"""What a failed attempt means for a post: waiting for a retry with backoff, waiting while it cannot be sent, failed
with the reason, or, for a scheduled post far past its time, missed."""

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from integrations.adapter import describe
from integrations.clock import shown
from integrations.conf import app_settings
from integrations.exceptions import ChannelNotReady, IntegrationDisabled, IntegrationError, ScheduleMissed
from integrations.models import Post
from integrations.posting import signals
from integrations.posting.lease import DeletionRequested
from integrations.signals import post_failed, send_on_commit

logger = logging.getLogger(__name__)

# Waits between attempts after temporary faults: about an hour in all before the post fails for good.
RETRY_DELAYS = (15, 30, 60, 120, 300, 600, 900, 1200)
# A due scheduled post whose channel cannot publish is looked at again after this long.
BLOCKED_RECHECK = timedelta(seconds=60)


def retry_delay(attempts: int, error: IntegrationError, *, rate_limited: bool) -> int | None:
    """Seconds until the next attempt after a temporary fault, or None when the post should fail for good.

    A rate limit (`rate_limited`: the provider's write budget is used up for now) delays a post as long as it says,
    however often: it never fails one. Other faults get about an hour of attempts.
    """
    if rate_limited:
        return max(error.retry_after or 0, RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])
    if attempts > len(RETRY_DELAYS):
        return None
    return max(error.retry_after or 0, RETRY_DELAYS[attempts - 1])


def failed_attempt(post: Post, error: IntegrationError, *, rate_limited: bool) -> Post:
    """Store what the attempt's failure means for the post: waiting for a retry, or failed with the reason.
    `DeletionRequested` when its owner marked it for deletion meanwhile (nothing is stored)."""
    # Waits, not fails, while the administrator has the integration switched off (or a scheduled post's channel
    # cannot publish when it falls due).
    if isinstance(error, IntegrationDisabled) or (post.scheduled_at and isinstance(error, ChannelNotReady)):
        return blocked(post, error)
    message = describe(error).message
    now = timezone.now()
    delay = retry_delay(post.attempts, error, rate_limited=rate_limited) if error.temporary else None
    if delay is not None:
        _stored(post.mark_waiting(now + timedelta(seconds=delay), error.code, message))
        signals.schedule_retry(post)
    else:
        _stored(post.mark_failed(error.code, message))
        send_on_commit(post_failed, Post, post=post, error_code=error.code, message=message)
    logger.info("post %s not published (%s): %s", post.pk, error.code, post.status)
    return post


def blocked(post: Post, error: IntegrationError) -> Post:
    """A scheduled post fell due while its channel cannot publish (or the integration is off), or a post was written
    while the integration is off: it waits with the reason, looked at again by `publish_due`, unless it is already
    too late (then it fails as missed). Nothing was sent, so the attempt does not count."""
    if too_late(post):
        return missed(post)
    _stored(post.mark_blocked(timezone.now() + BLOCKED_RECHECK, error.code, describe(error).message))
    logger.info("scheduled post %s is due but waits (%s)", post.pk, error.code)
    return post


def too_late(post: Post, now: datetime | None = None) -> bool:
    """Whether a scheduled post is more than `INTEGRATIONS_SCHEDULE_MISSED_AFTER` past its time."""
    limit = timedelta(seconds=app_settings.SCHEDULE_MISSED_AFTER)
    return post.scheduled_at is not None and (now or timezone.now()) - post.scheduled_at > limit


def missed(post: Post) -> Post:
    """Fail a scheduled post that could not go out in time; its owner decides (publish it now, or delete it)."""
    error = ScheduleMissed(shown(post.scheduled_at))
    message = describe(error).message
    _stored(post.mark_failed(error.code, message))
    send_on_commit(post_failed, Post, post=post, error_code=error.code, message=message)
    logger.info("scheduled post %s missed its time (%s)", post.pk, post.scheduled_at)
    return post


def _stored(saved: bool) -> None:
    if not saved:
        raise DeletionRequested()
