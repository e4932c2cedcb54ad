"""A channel's own recent posts, read from its repository (`com.atproto.repo.listRecords` on `app.bsky.feed.post`).

Read from the PDS rather than an AppView (`app.bsky.feed.getAuthorFeed`), so it works on any PDS. Every record is
upstream data: whatever its shape, it becomes an item (fields it lacks or garbles are left empty), never an error.
"""

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from threading import Lock
from typing import Any

from integrations.bluesky.accounts import door
from integrations.bluesky.identity import identifiers
from integrations.exceptions import InvalidCursor
from integrations.models import Channel, PostPart
from integrations.text import clean_text

POST_COLLECTION = "app.bsky.feed.post"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100  # the lexicon's maximum
MAX_TEXT_LENGTH = 3000  # the lexicon's maxLength in bytes (300 graphemes), so never more characters than that
MAX_URI_LENGTH = 500  # PostPart.uri
MAX_CID_LENGTH = 100  # PostPart.cid
# The reference PDS's cursor is the last record key; other servers may send something else, so a cursor is passed
# through opaque, but only when it is shaped like a record key (a query value, never markup).
logger = logging.getLogger(__name__)
QUOTE_EMBEDS = frozenset({"app.bsky.embed.record", "app.bsky.embed.recordWithMedia"})
IMAGE_EMBED = "app.bsky.embed.images"


@dataclass(frozen=True)
class FeedItem:
    uri: str
    cid: str
    text: str
    created_at: datetime | None  # None when the record's `createdAt` is missing or not a time
    is_reply: bool
    is_quote: bool
    has_images: bool
    url: str  # the post's bsky.app address ("" when its URI is not one of this account's posts)
    published_by_skyport: bool


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedItem]
    cursor: str | None  # pass back for the next (older) page; None on the last one


def check_cursor(cursor: str | None) -> str | None:
    """A client's cursor as it may be sent on (None for none); InvalidCursor when it is not one."""
    if cursor is None or cursor == "":
        return None
    if not identifiers.is_record_key(cursor):
        raise InvalidCursor()
    return cursor


def channel_feed(channel: Channel, cursor: str | None = None, limit: int | None = None) -> FeedPage:
    """One page of the channel's own posts, newest first, through the session door.

    Raises InvalidCursor for a malformed cursor, the door's errors for a channel without a session, and the
    client's errors when the PDS fails.
    """
    cursor = check_cursor(cursor)
    limit = max(1, min(MAX_LIMIT, int(limit or DEFAULT_LIMIT)))
    records, next_cursor = door.call(
        channel, lambda client, token: client.list_records(token, channel.did, POST_COLLECTION, limit, cursor)
    )
    records = records[:limit]
    items = [_item(channel.did, record) for record in records]
    published = published_here([item.uri for item in items if item.uri])
    items = [replace(item, published_by_skyport=item.uri in published) for item in items]
    # The reference PDS sends a cursor with every non-empty page; a short page is the last one.
    if len(records) < limit or (next_cursor is not None and not identifiers.is_record_key(next_cursor)):
        next_cursor = None
    return FeedPage(items=items, cursor=next_cursor)


def published_here(uris: list[str]) -> set[str]:
    """Which of these record URIs Skyport published (one lookup through the index on `PostPart.uri`)."""
    if not uris:
        return set()
    return set(PostPart.objects.filter(uri__in=uris).order_by().values_list("uri", flat=True))


def _item(did: str, record: dict[str, Any]) -> FeedItem:
    uri = _string(record.get("uri"), MAX_URI_LENGTH)
    value = record.get("value")
    value = value if isinstance(value, dict) else {}
    embed = value.get("embed") if isinstance(value.get("embed"), dict) else {}
    embed_type = embed.get("$type")
    media = embed.get("media") if isinstance(embed.get("media"), dict) else {}
    return FeedItem(
        uri=uri,
        cid=_string(record.get("cid"), MAX_CID_LENGTH),
        text=clean_text(value.get("text"))[:MAX_TEXT_LENGTH],
        created_at=parse_time(value.get("createdAt"), uri),
        is_reply=isinstance(value.get("reply"), dict),
        is_quote=embed_type in QUOTE_EMBEDS,
        has_images=embed_type == IMAGE_EMBED or media.get("$type") == IMAGE_EMBED,
        url=bsky_app_url(did, uri),
        published_by_skyport=False,
    )


def _string(value: Any, max_length: int) -> str:
    """A short identifier from upstream: the string when it fits, else ""."""
    return value if isinstance(value, str) and len(value) <= max_length and value.isprintable() else ""


_LOGGED_TIMES: OrderedDict[tuple[str, str], None] = OrderedDict()  # the last bad times logged, so each is logged once
_LOGGED_TIMES_KEPT = 1000
_logged_times_lock = Lock()


def parse_time(value: Any, uri: str = "") -> datetime | None:
    """A record's `createdAt` as an aware datetime in UTC, or None when it is missing or not an atproto datetime
    that can be shown (`identifiers.parse_datetime`: e.g. `9999-12-31T23:59:00-00:01` is year 10000 in UTC). Bad
    upstream data is the record's author's, never a broken page: the record is shown without a time, and the
    value is logged once (per record and value, in this process)."""
    when = identifiers.parse_datetime(value)
    if when is None and value is not None:
        key = (uri, repr(value)[:100])
        with _logged_times_lock:
            first = key not in _LOGGED_TIMES
            _LOGGED_TIMES[key] = None
            if len(_LOGGED_TIMES) > _LOGGED_TIMES_KEPT:
                _LOGGED_TIMES.popitem(last=False)
        if first:
            logger.warning("record %s has a createdAt that is no time it can be shown at: %s", uri or "?", key[1])
    return when


def bsky_app_url(did: str, uri: str) -> str:
    """`https://bsky.app/profile/<did>/post/<rkey>` for one of the account's own post URIs, else ""."""
    prefix = f"at://{did}/{POST_COLLECTION}/"
    rkey = uri.removeprefix(prefix) if uri.startswith(prefix) else ""
    return f"https://bsky.app/profile/{did}/post/{rkey}" if identifiers.is_record_key(rkey) else ""
