"""A channel's own recent posts, read from its repository (`com.atproto.repo.listRecords` on `app.bsky.feed.post`).

Read from the PDS rather than an AppView (`app.bsky.feed.getAuthorFeed`), so it works on any PDS. Every record is
upstream data: whatever its shape, it becomes an item (fields it lacks or garbles are left empty), never an error.
"""

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from integrations.bluesky import lifecycle
from integrations.bluesky.client import clean_text
from integrations.exceptions import InvalidCursor
from integrations.models import Channel, PostPart

POST_COLLECTION = "app.bsky.feed.post"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100  # the lexicon's maximum
MAX_TEXT_LENGTH = 3000  # the lexicon's maxLength in bytes (300 graphemes), so never more characters than that
MAX_URI_LENGTH = 500  # PostPart.uri
MAX_CID_LENGTH = 100  # PostPart.cid
MAX_TIME_LENGTH = 64
# A record key's characters and length. The reference PDS's cursor is the last record key; other servers may send
# something else, so a cursor is passed through opaque, but only when it looks like one (a query value, never markup).
RKEY_RE = re.compile(r"[A-Za-z0-9._:~-]{1,512}")
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
    if not isinstance(cursor, str) or not RKEY_RE.fullmatch(cursor):
        raise InvalidCursor()
    return cursor


def channel_feed(channel: Channel, cursor: str | None = None, limit: int | None = None) -> FeedPage:
    """One page of the channel's own posts, newest first, through the session lifecycle.

    Raises InvalidCursor for a malformed cursor, the lifecycle's errors for a channel without a session, and the
    client's errors when the PDS fails.
    """
    cursor = check_cursor(cursor)
    limit = max(1, min(MAX_LIMIT, int(limit or DEFAULT_LIMIT)))
    records, next_cursor = lifecycle.call(
        channel, lambda client, token: client.list_records(token, channel.did, POST_COLLECTION, limit, cursor)
    )
    records = records[:limit]
    items = [_item(channel.did, record) for record in records]
    published = published_here([item.uri for item in items if item.uri])
    items = [replace(item, published_by_skyport=item.uri in published) for item in items]
    # The reference PDS sends a cursor with every non-empty page; a short page is the last one.
    if len(records) < limit or (next_cursor is not None and not RKEY_RE.fullmatch(next_cursor)):
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
        created_at=parse_time(value.get("createdAt")),
        is_reply=isinstance(value.get("reply"), dict),
        is_quote=embed_type in QUOTE_EMBEDS,
        has_images=embed_type == IMAGE_EMBED or media.get("$type") == IMAGE_EMBED,
        url=bsky_app_url(did, uri),
        published_by_skyport=False,
    )


def _string(value: Any, max_length: int) -> str:
    """A short identifier from upstream: the string when it fits, else ""."""
    return value if isinstance(value, str) and len(value) <= max_length and value.isprintable() else ""


def parse_time(value: Any) -> datetime | None:
    """A record's `createdAt` as an aware datetime, or None when it is not a time with a zone."""
    if not isinstance(value, str) or len(value) > MAX_TIME_LENGTH:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def bsky_app_url(did: str, uri: str) -> str:
    """`https://bsky.app/profile/<did>/post/<rkey>` for one of the account's own post URIs, else ""."""
    prefix = f"at://{did}/{POST_COLLECTION}/"
    rkey = uri.removeprefix(prefix) if uri.startswith(prefix) else ""
    return f"https://bsky.app/profile/{did}/post/{rkey}" if RKEY_RE.fullmatch(rkey) else ""
