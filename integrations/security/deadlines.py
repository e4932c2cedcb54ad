"""The deadline in force for outbound requests: one moment on the monotonic clock, held in a context variable so
that it reaches every request made inside `deadline(...)` in this thread or context, nested ones keeping the
stricter. `integrations.security.outbound` enforces it on every connect, TLS handshake, read and write.
"""

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_deadline", default=None)


def stricter(seconds: float | None) -> float | None:
    """The stricter of the deadline in force and one `seconds` from now (monotonic clock)."""
    current = _deadline.get()
    if seconds is None:
        return current
    mine = time.monotonic() + seconds
    return mine if current is None else min(current, mine)


@contextmanager
def pinned(at: float | None) -> Iterator[None]:
    """The deadline `at` (a monotonic moment, or None for none) in force inside, whatever was before."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every request made inside (in this thread or context) ends within `seconds` from now, or sooner when an
    enclosing deadline says so. A request past it raises an httpx timeout (httpx.TimeoutException)."""
    with pinned(stricter(seconds)):
        yield


def remaining() -> float | None:
    """Seconds left before the deadline in force (never below 0), or None when there is none."""
    at = _deadline.get()
    return None if at is None else max(0.0, at - time.monotonic())
