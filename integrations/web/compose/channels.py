"""The composer's channel picker: the user's channels with whether each can publish now (and why not), at most
PICKER_SIZE at once, and the one the composer opens with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Case, Q, When
from django.utils import timezone

from integrations.bluesky import services
from integrations.exceptions import IntegrationError
from integrations.models import Channel, Post
from integrations.validators import parse_id


@dataclass(frozen=True)
class ChannelOption:
    """A channel in the composer's picker: selectable when it can publish now, else the reason it cannot."""

    channel: Channel
    health: services.Health
    reason: str  # empty when the channel can publish

    @property
    def ready(self) -> bool:
        return not self.reason


# The composer lists at most this many channels; a user with more finds the others by searching.
PICKER_SIZE = 20
MAX_QUERY_LENGTH = 100


class ChannelOptions(list):
    """The channels the composer offers (`ChannelOption`s, those that can publish first), and of how many: all of
    the user's when they have at most PICKER_SIZE, else the first PICKER_SIZE matching `query` (and the chosen
    one, wherever it sorts)."""

    def __init__(self, options: Iterable[ChannelOption] = (), *, total: int = 0, query: str = "") -> None:
        super().__init__(options)
        self.total = total
        self.query = query

    @property
    def searchable(self) -> bool:
        """Whether the user has more channels than the composer lists at once (it offers a search then)."""
        return self.total > PICKER_SIZE


def channel_options(user: AbstractBaseUser, *, query: str = "", chosen: Any = None) -> ChannelOptions:
    """The user's channels for the composer's picker (see ChannelOptions): `query` is part of a handle or a display
    name; `chosen` (an id, as the form sent it) is always among them when it is one of the user's channels. While
    the administrator has the integration switched off, posts wait: that makes no channel unavailable."""
    channels = Channel.objects.filter(user=user).without_tokens()
    query = "".join(ch for ch in str(query or "") if ch.isprintable()).strip().removeprefix("@")[:MAX_QUERY_LENGTH]
    if query:
        channels_shown = channels.filter(Q(handle__icontains=query) | Q(display_name__icontains=query))
    else:
        channels_shown = channels
    # Those that can publish first: the database's guess from the stored state (the exact answer is below).
    now = timezone.now()
    likely_ready = Q(status__in=[Channel.Status.ACTIVE, Channel.Status.DEGRADED]) & (
        Q(refresh_expires_at__isnull=True) | Q(refresh_expires_at__gt=now)
    )
    first = list(
        channels_shown.order_by(Case(When(likely_ready, then=0), default=1), "handle", "pk")[: PICKER_SIZE + 1]
    )
    total = len(first) if len(first) <= PICKER_SIZE and not query else channels.count()
    found = first[:PICKER_SIZE]
    wanted = int(chosen) if str(chosen or "").isdigit() and len(str(chosen)) <= 18 else None  # an id, never an overflow
    if wanted is not None and all(channel.pk != wanted for channel in found):
        found += list(channels.filter(pk=wanted))
    options = sorted((_option(channel) for channel in found), key=lambda o: (not o.ready, o.channel.handle))
    return ChannelOptions(options, total=total, query=query)


def _option(channel: Channel) -> ChannelOption:
    state = services.health(channel)
    try:
        services.ensure_channel_ready(channel)
    except IntegrationError:
        reason = state.advice or f"{state.label}."  # the label is on the badge next to it
    else:
        reason = ""
    return ChannelOption(channel, state, reason)


def last_used_channel(user: AbstractBaseUser) -> int | None:
    """The channel the user last published or scheduled on, whatever it can do now (None before their first post)."""
    return Post.objects.filter(user=user).order_by("-created_at", "-pk").values_list("channel_id", flat=True).first()


def preselected_channel(user: AbstractBaseUser, options: list[ChannelOption], wanted: str = "") -> int | None:
    """The channel the composer opens with: the one asked for (a channel page's "Write a post"), else the only one
    that can publish, else the one the user last published or scheduled on, if it can publish now."""
    ready = [o.channel.pk for o in options if o.ready]
    if (chosen := parse_id(wanted)) in ready:
        return chosen
    if len(ready) <= 1:
        return ready[0] if ready else None
    last = Post.objects.filter(user=user, channel_id__in=ready).order_by("-created_at", "-pk")
    return last.values_list("channel_id", flat=True).first()
