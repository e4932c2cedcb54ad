"""A channel's health, decided in one place from its stored state: active, expiring, degraded, needs reconnection,
deactivated, suspended or disconnected, with the adapter's words and the action its owner should take."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.adapter import get_adapter
from integrations.bluesky.xrpc import errors
from integrations.models import Channel
from integrations.signals import channel_health_changed, send_on_commit

logger = logging.getLogger(__name__)

EXPIRING_WITHIN = timedelta(days=7)


@dataclass(frozen=True)
class Health:
    state: str
    label: str
    advice: str
    action: str  # "", "refresh", "reconnect"

    @property
    def needs_reconnection(self) -> bool:
        return self.state == "needs_reconnection"

    @property
    def expired(self) -> bool:
        return self.state in ("needs_reconnection", "disconnected")


HEALTH_ACTIONS = {
    "active": "",
    "expiring": "refresh",
    "degraded": "refresh",
    "needs_reconnection": "reconnect",
    "deactivated": "refresh",
    "suspended": "",
    "disconnected": "reconnect",
}


def health_state(channel: Channel, now: datetime | None = None) -> str:
    """The one place that decides how a channel is doing (see HEALTH_ACTIONS for the states)."""
    now = now or timezone.now()
    status = channel.status
    ends = channel.refresh_expires_at
    if status == Channel.Status.DISCONNECTED:
        return "disconnected"
    if status == Channel.Status.NEEDS_RECONNECTION or (ends and ends <= now) or channel.session_unreadable:
        return "needs_reconnection"
    if status in (Channel.Status.DEACTIVATED, Channel.Status.SUSPENDED):
        return status
    # Before "degraded": a session that ends within days and could not be renewed is the more urgent news.
    if ends and ends - now <= EXPIRING_WITHIN:
        return "expiring"
    if status == Channel.Status.DEGRADED:
        return "degraded"
    return "active"


def announce_health(row: Channel, old_state: str | None) -> None:
    """Send `channel_health_changed` (once the transaction commits) when the row's health moved from `old_state`."""
    new_state = health_state(row)
    if old_state is not None and new_state != old_state:
        logger.info("channel health %s -> %s did=%s handle=%s", old_state, new_state, row.did, row.handle)
        send_on_commit(channel_health_changed, Channel, channel=row, old_state=old_state, new_state=new_state)


def health(channel: Channel, now: datetime | None = None) -> Health:
    """How a channel is doing, in the adapter's words, and the action its owner should take."""
    state = health_state(channel, now)
    texts = state
    if state == "needs_reconnection" and session_unreadable(channel):
        texts = "session_unreadable"  # same state and action; the advice says why (a removed encryption key)
    elif state == "needs_reconnection" and channel.last_error_code == errors.AccountMoved.code:
        texts = "account_moved"  # the advice names the server the account moved to
    label, advice = get_adapter().describe_health(
        texts, ends_at=channel.refresh_expires_at, retry_at=channel.next_retry_at, pds=channel.pds_url
    )
    return Health(state, label, advice, HEALTH_ACTIONS[state])


def session_unreadable(channel: Channel) -> bool:
    """Whether the channel needs reconnection because no configured key decrypts its stored session."""
    return channel.session_unreadable or (
        channel.status == Channel.Status.NEEDS_RECONNECTION and channel.last_error_code == errors.SessionUnreadable.code
    )


PROBLEM_STATES = frozenset({"needs_reconnection", "deactivated", "suspended"})


def channels_with_problems(channels: QuerySet[Channel], now: datetime | None = None) -> list[Channel]:
    """The channels of `channels` that may have a problem their owner was not told about yet, found by the database
    (a session whose key was removed is found once keep-alive or its owner's page meets it)."""
    now = now or timezone.now()
    untold = Q()
    for status in (Channel.Status.NEEDS_RECONNECTION, Channel.Status.DEACTIVATED, Channel.Status.SUSPENDED):
        untold |= Q(status=status) & ~Q(owner_told_status=status)
    untold |= Q(refresh_expires_at__lte=now) & ~Q(owner_told_status="needs_reconnection")
    return list(channels.exclude(status=Channel.Status.DISCONNECTED).filter(untold))


def take_owner_notices(rows: list[tuple[Channel, Health]]) -> list[tuple[Channel, Health]]:
    """The channels whose owner has not yet been told about their current problem; marks them as told."""
    new = [(channel, h) for channel, h in rows if h.state in PROBLEM_STATES and channel.owner_told_status != h.state]
    for state in {h.state for _, h in new}:
        pks = [channel.pk for channel, h in new if h.state == state]
        Channel.objects.filter(pk__in=pks).update(owner_told_status=state)
    for channel, h in new:
        channel.owner_told_status = h.state
    return new
