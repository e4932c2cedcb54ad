"""The user's clock on their pages (`integrations.clock` shows times on it).

The user's time zone is, in this order: the one their profile names (the adapter's `user_time_zone`, which projects
override to read their own user model), the one their browser reported (a cookie that `clock.js` sets on every page,
the sign-in page included), else the site's `TIME_ZONE`. `on_users_clock` activates it while a view runs, so
Django's `date` filter, `localtime` and forms all read and write on that clock; each page names the zone once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from functools import wraps
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from integrations.adapter import get_adapter
from integrations.clock import on_a_page, zone_named

# Set by static/integrations/clock.js from `Intl.DateTimeFormat().resolvedOptions().timeZone`.
BROWSER_ZONE_COOKIE = "skyport_tz"


@dataclass(frozen=True)
class UserClock:
    """The zone a user's times are shown in, and where it came from: "profile", "browser" or "site"."""

    zone: tzinfo
    name: str
    source: str


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
        with on_a_page(clock.zone):
            response = view(request, *args, **kwargs)
            render = getattr(response, "render", None)
            if callable(render) and not getattr(response, "is_rendered", True):
                response.render()  # a TemplateResponse renders later: still on this clock
        return response

    return wrapped
