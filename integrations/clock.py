"""One clock for a user's pages: every time they read (scheduled, published, a channel's dates) is on it.

The user's time zone is, in this order: the one their profile names (the adapter's `user_time_zone`, which projects
override to read their own user model), the one their browser reported (a cookie that `clock.js` sets on every page,
the sign-in page included), else the site's `TIME_ZONE`. `on_users_clock` activates it while a view runs, so
Django's `date` filter, `localtime` and forms all read and write on that clock; each page names the zone once.
"""

import zoneinfo
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import wraps
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from integrations.adapter import get_adapter

# Set by static/integrations/clock.js from `Intl.DateTimeFormat().resolvedOptions().timeZone`.
BROWSER_ZONE_COOKIE = "skyport_tz"
MAX_ZONE_NAME = 64
# True while a page on the user's clock is made: the page names the zone once, so a time in it does not.
_ON_A_PAGE: ContextVar[bool] = ContextVar("integrations_on_users_clock", default=False)


@dataclass(frozen=True)
class UserClock:
    """The zone a user's times are shown in, and where it came from: "profile", "browser" or "site"."""

    zone: tzinfo
    name: str
    source: str


def zone_named(name: str) -> tzinfo | None:
    """The IANA time zone of that name, or None when there is none (or the name is not one)."""
    if not name or len(name) > MAX_ZONE_NAME:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def users_clock(request: HttpRequest) -> UserClock:
    """The zone to show `request.user` times in (see the module's docstring for the order)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        name = get_adapter().user_time_zone(user) or ""
        if (zone := zone_named(name)) is not None:
            return UserClock(zone, name, "profile")
    name = unquote(request.COOKIES.get(BROWSER_ZONE_COOKIE, ""))
    if (zone := zone_named(name)) is not None:
        return UserClock(zone, name, "browser")
    site = timezone.get_default_timezone()
    return UserClock(site, str(getattr(site, "key", site)), "site")


def on_users_clock(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Run a view (and render its page) with the user's time zone active (`request.clock` names it)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        clock = users_clock(request)
        request.clock = clock  # type: ignore[attr-defined]
        token = _ON_A_PAGE.set(True)
        try:
            with timezone.override(clock.zone):
                response = view(request, *args, **kwargs)
                render = getattr(response, "render", None)
                if callable(render) and not getattr(response, "is_rendered", True):
                    response.render()  # a TemplateResponse renders later: still on this clock
        finally:
            _ON_A_PAGE.reset(token)
        return response

    return wrapped


def local(moment: datetime) -> datetime:
    """`moment` on the active clock (the user's, inside `on_users_clock`)."""
    return timezone.localtime(moment)


def shown(moment: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`moment` in words on the active clock: bare on a user's page (which names the zone once), with the zone's
    abbreviation anywhere else (an e-mail, the API, a worker's message)."""
    at = local(moment)
    return f"{at:{fmt}}" if _ON_A_PAGE.get() else f"{at:{fmt}} {at.tzname()}"
