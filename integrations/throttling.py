"""Connect-attempt throttling, shared by the web form and the API.

Each attempt costs one `createSession` on the PDS, which bsky.social limits to 30 per 5 minutes and 300 per day
per account. We allow fewer: per signed-in user, per client IP and per Bluesky account tried (so several users
cannot together use up one account's budget), over 5 minutes and over a day (fixed windows in the shared cache;
use Redis in production, where the counters are atomic).
"""

import hashlib
import time

from django.core.cache import BaseCache, caches

from integrations.conf import app_settings
from integrations.exceptions import ConnectThrottled

DAY = 24 * 60 * 60
DEFAULT_RATES = {
    "user": (10, 300),
    "ip": (20, 300),
    "account": (10, 300),
    "user_day": (100, DAY),
    "ip_day": (200, DAY),
    "account_day": (100, DAY),
}


def _rates() -> dict[str, tuple[int, int]]:
    return {**DEFAULT_RATES, **app_settings.CONNECT_RATES}


def shared_cache() -> BaseCache:
    """The cache every server process shares (counters, short-lived lookups)."""
    return caches[app_settings.CACHE_ALIAS]


def hit_connect_attempt(*, user_id: int | None = None, ip: str | None = None, account: str | None = None) -> None:
    """Count one connect attempt against each limit named; raise ConnectThrottled (with retry_after) when one is
    already used up. `account` is the account's canonical key (a DID where known), not the string typed."""
    now = time.time()
    account = hashlib.sha256(account.encode()).hexdigest()[:32] if account else None  # no handles in keys
    idents = {"user": user_id, "ip": ip, "account": account}
    for scope, (limit, window) in _rates().items():
        ident = idents.get(scope.removesuffix("_day"))
        if ident in (None, ""):
            continue
        retry_after = over_rate(f"connect:{scope}", str(ident), limit, window, now=now)
        if retry_after is not None:
            raise ConnectThrottled(retry_after=retry_after)


def over_rate(
    scope: str, ident: str, limit: int, window: int, *, now: float | None = None, cost: int = 1
) -> int | None:
    """Count one hit (or `cost` units: bytes, say; 0 only looks) for `ident` in `scope` (fixed windows of `window`
    seconds, in the shared cache); the seconds to wait when the count is now over `limit`, else None."""
    cache = shared_cache()
    now = time.time() if now is None else now
    window_start = int(now // window * window)
    key = f"integrations:{scope}:{ident}:{window_start}"
    cache.add(key, 0, window + 5)
    try:
        count = cache.incr(key, cost)
    except ValueError:  # evicted between add and incr
        cache.set(key, cost, window + 5)
        count = cost
    if count > limit:
        return max(1, int(window_start + window - now + 0.999))
    return None
