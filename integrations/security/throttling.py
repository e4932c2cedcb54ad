"""Rate limits: connect attempts and every other per-user limit (`over_rate`).

Each attempt to connect costs one `createSession` on the PDS, which bsky.social limits to 30 per 5 minutes and 300 per
day per account. We allow fewer: per signed-in user, per client IP and per Bluesky account tried (so several users
cannot together use up one account's budget), over 5 minutes and over a day.

Counters are fixed windows kept in the database (`RateCounter`), never in a cache: a cache evicts entries when it is
full (the file cache culls a third of them at random past 300), so other users' traffic could reset a limit. One
statement counts a hit and returns the new count (an upsert, atomic across processes on SQLite and PostgreSQL). A
count must survive the request that made it even when that request is rolled back (`ATOMIC_REQUESTS`: a refused API
call rolls back, yet the attempt happened): inside such a transaction the count is written through a second,
autocommit connection to the same database. SQLite cannot take a second writer while the request's transaction holds
the write lock, so there the count stays in the request's transaction; `check --deploy` says so
(`integrations.W008`). Windows that ended are deleted by the keep-alive task (`prune_counters`).
"""

import hashlib
import threading
import time

from django.core.cache import BaseCache, caches
from django.core.signals import request_finished
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

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
    seconds); the seconds to wait when the count is now over `limit`, else None."""
    return over_rates(scope, ident, {"": (limit, window)}, now=now, cost=cost)


def over_rates(
    scope: str, ident: str, rates: dict[str, tuple[int, int]], *, now: float | None = None, cost: int = 1
) -> int | None:
    """`over_rate` for several limits of one thing at once (per minute and per day, say: `rates` maps a name to
    `(limit, window)`), counted in one statement; the longest wait among those now over their limit, else None."""
    now = time.time() if now is None else now
    windows = {}
    for name, (limit, window) in rates.items():
        window_start = int(now // window * window)
        key = f"{scope}{':' + name if name else ''}:{ident}:{window_start}"
        if len(key) > 200:  # a scope or ident longer than the column: its digest (still one key per window)
            key = f"{scope[:60]}:{hashlib.sha256(key.encode()).hexdigest()}"
        windows[key] = (limit, window_start + window)
    counts = _count_hits([(key, ends_at, cost) for key, (_, ends_at) in windows.items()])
    waits = [max(1, int(ends_at - now + 0.999)) for key, (limit, ends_at) in windows.items() if counts[key] > limit]
    return max(waits, default=None)


def first_use(scope: str, ident: str, *, keep_until: float) -> bool:
    """True the first time `ident` is used in `scope`, False every time after, until `keep_until` (seconds since
    the epoch), when it is forgotten: a one-time token's single use, decided by one atomic statement."""
    key = f"{scope}:{ident}"
    if len(key) > 200:
        key = f"{scope[:60]}:{hashlib.sha256(key.encode()).hexdigest()}"
    return _count_hit(key, int(keep_until), 1) == 1


def _count_hit(key: str, ends_at: int, cost: int) -> int:
    return _count_hits([(key, ends_at, cost)])[key]


def _count_hits(hits: list[tuple[str, int, int]]) -> dict[str, int]:
    """Add each hit's cost to its counter (`(key, ends_at, cost)`, distinct keys); the new counts by key."""
    from integrations.models import RateCounter

    alias = router.db_for_write(RateCounter)
    connection = _connection_that_commits(alias)
    table = connection.ops.quote_name(RateCounter._meta.db_table)
    key_column, count_column, end_column = (
        connection.ops.quote_name(RateCounter._meta.get_field(name).column) for name in ("key", "count", "ends_at")
    )
    # Both backends know this upsert (SQLite 3.35+, PostgreSQL 9.5+): each row is created or incremented in one
    # statement, so two processes counting at once both count, and several windows cost one round trip (and one
    # commit). Only quoted names are put in; values are parameters.
    sql = (
        f"INSERT INTO {table} ({key_column}, {count_column}, {end_column}) "  # noqa: S608
        f"VALUES {', '.join(['(%s, %s, %s)'] * len(hits))} "
        f"ON CONFLICT ({key_column}) DO UPDATE SET {count_column} = {table}.{count_column} + excluded.{count_column} "
        f"RETURNING {key_column}, {count_column}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for key, ends_at, cost in hits for value in (key, cost, ends_at)])
        return {key: int(count) for key, count in cursor.fetchall()}


_side = threading.local()


def _connection_that_commits(alias: str) -> BaseDatabaseWrapper:
    """The connection a count is written through: the usual one, unless it is inside a request's transaction
    (`ATOMIC_REQUESTS`) that a refusal would roll back; then a second one in autocommit (not on SQLite, which takes
    one writer at a time)."""
    connection = connections[alias]
    rolled_back_with_request = connection.settings_dict.get("ATOMIC_REQUESTS") and connection.in_atomic_block
    if not rolled_back_with_request or connection.vendor == "sqlite":
        return connection
    side = getattr(_side, alias, None)
    if side is None:
        side = connections.create_connection(alias)
        setattr(_side, alias, side)
    side.ensure_connection()
    return side


def _close_side_connections(**kwargs: object) -> None:
    """At the end of a request, as Django does with its own connections (`CONN_MAX_AGE`)."""
    for side in list(vars(_side).values()):
        side.close_if_unusable_or_obsolete()


request_finished.connect(_close_side_connections, dispatch_uid="integrations.security.throttling.side_connections")


def prune_counters(now: float | None = None) -> int:
    """Delete the counters of windows that have ended; how many."""
    from integrations.models import RateCounter

    now = time.time() if now is None else now
    deleted, _ = RateCounter.objects.filter(ends_at__lte=int(now)).delete()
    return deleted
