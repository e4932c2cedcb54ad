"""Keep-alive: refresh every session that would otherwise run out, before it does.

A channel is due when its refresh token ends within `INTEGRATIONS_KEEPALIVE_WITHIN_DAYS` (default 30) or its last
successful refresh is older than `INTEGRATIONS_KEEPALIVE_STALE_DAYS` (default 7). Degraded channels wait for their
retry time. Each refresh goes through `door.refresh` with the generation the sweep saw, so two overlapping
sweeps (two workers) refresh a channel once: the second finds the row moved on and leaves it.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import close_old_connections, connection, connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.bluesky.accounts import door
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError
from integrations.models import KEEPALIVE_STATES, Channel, last_refreshed

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    due: int = 0
    refreshed: int = 0
    skipped: int = 0
    failed: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "due": self.due,
            "refreshed": self.refreshed,
            "skipped": self.skipped,
            "failed": dict(self.failed),
            "seconds": round(self.seconds, 3),
        }


def channels_due(now=None, *, within_days: int | None = None, stale_days: int | None = None) -> QuerySet[Channel]:
    """Channels whose session should be refreshed now."""
    now = now or timezone.now()
    if within_days is None:
        within_days = app_settings.KEEPALIVE_WITHIN_DAYS
    if stale_days is None:
        stale_days = app_settings.KEEPALIVE_STALE_DAYS
    within, stale = timedelta(days=within_days), timedelta(days=stale_days)
    # Written for the two partial indexes over the states refreshed here (`integrations_channel_ka_ends` and
    # `_ka_stale`): the due channels are read from them, never by scanning every channel.
    return (
        Channel.objects.filter(KEEPALIVE_STATES)
        .alias(last_refreshed=last_refreshed())
        .filter(Q(refresh_expires_at__lte=now + within) | Q(last_refreshed__lte=now - stale))
        .filter(Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now))
        .exclude(refresh_jwt="")
    )


def _refresh_one(pk: int, generation: int) -> str:
    close_old_connections()
    try:
        channel = Channel(pk=pk)
        refreshed = door.refresh(channel, seen_generation=generation, force=True)
        return "refreshed" if refreshed else "skipped"
    except Channel.DoesNotExist:
        return "skipped"
    except IntegrationError as exc:
        return exc.code
    except Exception:  # one broken row (a database error, a bug) must not stop the sweep
        logger.exception("keep-alive could not refresh channel %s", pk)
        return "internal_error"
    finally:
        connections.close_all()


def sweep(
    *,
    concurrency: int | None = None,
    within_days: int | None = None,
    stale_days: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Refresh every due channel with at most `concurrency` refreshes in flight; return what happened."""
    started = time.monotonic()
    due = list(
        channels_due(within_days=within_days, stale_days=stale_days)
        .order_by("refresh_expires_at", "pk")
        .values_list("pk", "session_generation")
    )
    result = SweepResult(due=len(due))
    workers = max(1, concurrency or app_settings.KEEPALIVE_CONCURRENCY)
    if connection.vendor == "sqlite":
        # SQLite has one write lock and a refresh holds it for its PDS round trip: more workers would only queue
        # (and make other writers wait longer), so refresh one at a time.
        workers = 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keepalive") as pool:
        for outcome in pool.map(lambda item: _refresh_one(*item), due):
            if outcome == "refreshed":
                result.refreshed += 1
            elif outcome == "skipped":
                result.skipped += 1
            else:
                result.failed[outcome] += 1
            if progress:
                progress(1)
    result.seconds = time.monotonic() - started
    logger.info("keep-alive sweep %s", result.as_dict())
    return result
