"""Where the session door lived before the reshape split it (`door`: calls and refreshes; `connection`: stored
sessions and disconnection; `following`: following a moved identity).

Kept only while the publishing code still says `lifecycle.call` (it is being reshaped at the same time); remove
once nothing imports it.
"""

from collections.abc import Callable

from integrations.bluesky.accounts import door
from integrations.bluesky.xrpc.client import PdsClient
from integrations.models import Channel


def call[T](channel: Channel, fn: Callable[[PdsClient, str], T]) -> T:
    """`door.call`, looked up at each call (so a stub put on `door.call` serves these callers too)."""
    return door.call(channel, fn)
