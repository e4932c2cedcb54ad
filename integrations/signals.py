"""Signals the app sends, for a product to react to what happens to its users' channels.

Each is sent after the transaction that made the change commits (at once outside a transaction), with
`sender=Channel` and the channel as `channel`:

- `channel_connected(channel, reconnected)`: a session was opened; `reconnected` is True when it replaced one the
  channel had (or the channel existed, disconnected, before).
- `channel_disconnected(channel, revoked)`: the owner disconnected it; `revoked` says whether the server confirmed
  the sign-out.
- `channel_health_changed(channel, old_state, new_state)`: its health moved from one state to another (see
  `integrations.bluesky.accounts.health` for the states).

and with `sender=Post` and the post as `post`:

- `post_published(post)`: every part of the post is on the channel.
- `post_failed(post, error_code, message)`: the post failed for good (a retry is the owner's decision).
"""

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.dispatch import Signal

channel_connected = Signal()
channel_disconnected = Signal()
channel_health_changed = Signal()
post_published = Signal()
post_failed = Signal()


def send_on_commit(signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send `signal` once the current transaction commits (never for a change that is rolled back)."""
    send: Callable[[], Any] = lambda: signal.send(sender=sender, **kwargs)  # noqa: E731
    transaction.on_commit(send)
