"""Stored state: integration options, connected channels (with encrypted sessions) and their event log, posts with
their parts and media, and rate-limit counters. One module a concern; every model is importable from here, as Django
and the rest of the app expect."""

from integrations.models.channels import (
    KEEPALIVE_STATES,
    Channel,
    ChannelEvent,
    EventNote,
    last_refreshed,
)
from integrations.models.counters import RateCounter
from integrations.models.options import MANAGE_PERMISSION, IntegrationOption
from integrations.models.posts import Media, Post, PostPart, post_due_at, post_history_at

__all__ = [
    "KEEPALIVE_STATES",
    "MANAGE_PERMISSION",
    "Channel",
    "ChannelEvent",
    "EventNote",
    "IntegrationOption",
    "Media",
    "Post",
    "PostPart",
    "RateCounter",
    "last_refreshed",
    "post_due_at",
    "post_history_at",
]
