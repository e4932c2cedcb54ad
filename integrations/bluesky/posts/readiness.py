"""Whether a channel can publish now."""

from integrations.adapter import get_adapter
from integrations.bluesky import options as bluesky_options
from integrations.bluesky.accounts.health import health_state
from integrations.exceptions import ChannelNotReady, IntegrationDisabled
from integrations.models import Channel

READY_STATES = frozenset({"active", "expiring", "degraded"})


def ensure_can_publish(channel: Channel) -> None:
    """Raise what stops `channel` from publishing now: the integration is off, or the channel needs attention."""
    if not bluesky_options.enabled():
        raise IntegrationDisabled()
    ensure_channel_ready(channel)


def ensure_channel_ready(channel: Channel) -> None:
    """Raise ChannelNotReady when `channel` needs its owner's attention before it can publish (whether the
    administrator has the integration switched on is another matter: posts wait for that)."""
    state = health_state(channel)
    if state not in READY_STATES:
        label, _ = get_adapter().describe_health(state)
        raise ChannelNotReady(f"@{channel.handle}: {label}.")
