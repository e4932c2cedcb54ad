"""Health is decided in one place; each state carries the words and action its owner needs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.bluesky import services
from integrations.models import Channel

NOW = timezone.now()


def channel(**fields) -> Channel:
    values = {"status": "active", "refresh_jwt": "r", "access_jwt": "a", "refresh_expires_at": NOW + timedelta(days=80)}
    return Channel(did="did:plc:x", handle="x.test", service_url="https://bsky.social", **{**values, **fields})


@pytest.mark.parametrize(
    ("fields", "state", "action"),
    [
        ({}, "active", ""),
        ({"refresh_expires_at": NOW + timedelta(days=6)}, "expiring", "refresh"),
        ({"status": "degraded", "next_retry_at": NOW + timedelta(minutes=5)}, "degraded", "refresh"),
        # A session ending within days that could not be renewed: the end date is the news, not the fault.
        ({"status": "degraded", "refresh_expires_at": NOW + timedelta(days=2)}, "expiring", "refresh"),
        ({"status": "needs_reconnection", "refresh_jwt": ""}, "needs_reconnection", "reconnect"),
        ({"refresh_expires_at": NOW - timedelta(minutes=1)}, "needs_reconnection", "reconnect"),
        ({"status": "deactivated"}, "deactivated", "refresh"),
        ({"status": "suspended"}, "suspended", ""),
        ({"status": "disconnected", "refresh_jwt": ""}, "disconnected", "reconnect"),
    ],
)
def test_states_and_actions(fields, state, action):
    health = services.health(channel(**fields), now=NOW)
    assert (health.state, health.action) == (state, action)
    assert health.label
    assert health.needs_reconnection is (state == "needs_reconnection")
    assert health.expired is (state in ("needs_reconnection", "disconnected"))


def test_advice_names_dates_and_links():
    expiring = services.health(channel(refresh_expires_at=NOW + timedelta(days=3)), now=NOW)
    assert f"{NOW + timedelta(days=3):%Y-%m-%d}" in expiring.advice
    dead = services.health(channel(status="needs_reconnection"), now=NOW)
    assert "https://bsky.app/settings/app-passwords" in dead.advice
    retry_at = NOW + timedelta(minutes=7)
    degraded = services.health(channel(status="degraded", next_retry_at=retry_at), now=NOW)
    assert f"{retry_at:%H:%M} UTC" in degraded.advice
    assert services.health(channel(), now=NOW).advice == ""
