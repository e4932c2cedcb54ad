"""One clock for a user's pages: every time they read (scheduled, published, a channel's dates) is on it.

This module holds what every layer needs of the clock: a zone by name, a moment on the active clock, and a moment in
words (bare on a user's page, which names the zone once; with the zone anywhere else). Which zone a request's user
reads in, and activating it while a view runs, are the pages' part: `integrations.web.clock`.
"""

import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, tzinfo

from django.utils import timezone

MAX_ZONE_NAME = 64
# True while a page on the user's clock is made: the page names the zone once, so a time in it does not.
_ON_A_PAGE: ContextVar[bool] = ContextVar("integrations_on_users_clock", default=False)


def zone_named(name: str) -> tzinfo | None:
    """The IANA time zone of that name, or None when there is none (or the name is not one)."""
    if not name or len(name) > MAX_ZONE_NAME:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


@contextmanager
def on_a_page(zone: tzinfo) -> Iterator[None]:
    """`zone` active, and times shown bare (the page names the zone once), while a user's page is made."""
    token = _ON_A_PAGE.set(True)
    try:
        with timezone.override(zone):
            yield
    finally:
        _ON_A_PAGE.reset(token)


def local(moment: datetime) -> datetime:
    """`moment` on the active clock (the user's, inside `on_users_clock`)."""
    return timezone.localtime(moment)


def shown(moment: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`moment` in words on the active clock: bare on a user's page (which names the zone once), with the zone's
    abbreviation anywhere else (an e-mail, the API, a worker's message)."""
    at = local(moment)
    return f"{at:{fmt}}" if _ON_A_PAGE.get() else f"{at:{fmt}} {at.tzname()}"
