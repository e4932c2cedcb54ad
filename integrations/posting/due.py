"""Which posts are due, and claiming them a batch at a time (several workers may run at once)."""

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.models import Post, post_due_at
from integrations.posting.lease import LEASE
from integrations.posting.retry import missed, too_late

# How many due posts a worker claims in one transaction.
CLAIM_BATCH = 10


def _due(now: datetime) -> Q:
    scheduled = Q(status=Post.Status.SCHEDULED, scheduled_at__lte=now) & (
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)  # a lease here: held for an edit
    )
    waiting = Q(status=Post.Status.WAITING, next_attempt_at__lte=now)
    abandoned = Q(status=Post.Status.PUBLISHING, lease_until__lte=now)
    return scheduled | waiting | abandoned


def _due_queryset(now: datetime) -> QuerySet[Post]:
    """Due posts, those that fell due first first, through the index of due times (`integrations_post_due`): its
    range `due_at <= now` holds only the posts that may be due, whatever the size of the table. (Walking the posts
    in id order, or one partial index per state, made the planner read every post.)"""
    return Post.objects.alias(due_at=post_due_at()).filter(due_at__lte=now).filter(_due(now)).order_by("due_at", "pk")


def next_due_at(after: datetime) -> datetime | None:
    """When the next post falls due after `after` (its scheduled time, its retry time or its lease's end), read
    from the index of due times; None when no post waits."""
    later = Post.objects.annotate(due_at=post_due_at()).filter(due_at__gt=after).order_by("due_at")
    return later.values_list("due_at", flat=True).first()


def due_posts(now: datetime | None = None) -> list[int]:
    """Posts whose next attempt is due: scheduled for now or earlier, waiting past their retry time, or taken by a
    worker whose lease ran out (it died mid-publish: the next attempt reconciles first, so nothing is written
    twice)."""
    return list(_due_queryset(now or timezone.now()).values_list("pk", flat=True))


def claim_due(now: datetime | None = None, *, limit: int = CLAIM_BATCH, skip: Sequence[int] = ()) -> list[Post]:
    """Take up to `limit` due posts for one attempt each (those that fell due first), in one short transaction, with
    a lease.

    On PostgreSQL, rows another worker is claiming are skipped (`skip_locked`): workers never take the same post nor
    wait for each other. On SQLite the write lock taken at BEGIN (`transaction_mode=IMMEDIATE`) serialises claims.
    A scheduled post found more than `SCHEDULE_MISSED_AFTER` late (no worker ran) fails as missed instead: it is
    returned `failed`, not taken.
    """
    now = now or timezone.now()
    features = connection.features
    with transaction.atomic():
        queryset = _due_queryset(now).exclude(pk__in=list(skip)).select_related("channel")
        if features.has_select_for_update:
            queryset = queryset.select_for_update(
                skip_locked=features.has_select_for_update_skip_locked,
                of=("self",) if features.has_select_for_update_of else (),
            )
        claimed = []
        for post in queryset[:limit]:
            if post.status == Post.Status.SCHEDULED and too_late(post, now):
                claimed.append(missed(post))
                continue
            post.start_attempt(timezone.now() + LEASE)
            claimed.append(post)
    return claimed


def publish_due(attempt: Callable[[Post], Post], now: datetime | None = None) -> Counter:
    """One attempt at every due post, claimed a batch at a time (several workers may run this at once); what
    happened, counted by the posts' new status. `attempt`: the provider's, given a claimed post, returns it as
    stored after the attempt."""
    outcome: Counter = Counter()
    seen: list[int] = []
    while True:
        batch = claim_due(now, skip=seen)
        if not batch:
            return outcome
        for post in batch:
            seen.append(post.pk)
            missed_it = post.status == Post.Status.FAILED
            outcome[post.status if missed_it else attempt(post).status] += 1
