"""Link cards (`app.bsky.embed.external`): a page's title, description and image, fetched by the server.

`fetch_card(url)` reads the page through the outbound guard (`integrations/outbound.py`): only public addresses
while insecure hosts are not allowed, every redirect checked (at most 5), the socket pinned to the checked address,
at most 1 MB read, `INTEGRATIONS_LINK_CARD_TIMEOUT` (5 s) for each connect and read. The metadata comes from Open
Graph, then Twitter, then plain HTML (`<title>`, `<meta name=description>`); the page's charset is the
Content-Type header's, else its `<meta charset>` (or http-equiv), else UTF-8 with replacement characters. The image
is read through the same guard and prepared as a thumbnail within the lexicon's 1,000,000 bytes; an image that
cannot be read or made small enough leaves a card without a thumbnail.

A card that cannot be built is a `CardResult` with no card and the reason in a user's words, never an exception:
a post goes out without its card rather than not at all. Results are kept in the shared cache per URL, an hour for
a card (with its thumbnail's bytes, at most 1 MB) and a minute for a failure (a page that was down may be back).
"""

import codecs
import hashlib
import logging
import re
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser

import httpx

from integrations import outbound
from integrations.bluesky import images
from integrations.conf import app_settings
from integrations.throttling import shared_cache

logger = logging.getLogger(__name__)

USER_AGENT = "Skyport link cards (compatible; fetches a page's title, description and image for a Bluesky post)"
MAX_REDIRECTS = 5
PAGE_MAX_BYTES = 1_000_000
# What we read of an image before preparing it: a large photo is a few MB; the thumbnail is re-encoded from it.
IMAGE_MAX_BYTES = 10_000_000
# The lexicon sets no maxLength on title or description; a card shows a line or two, and a record has to stay
# small (the whole post record is limited), so we keep at most this many characters, ending with an ellipsis.
MAX_TITLE = 300
MAX_DESCRIPTION = 1000
CACHE_SECONDS = 60 * 60
FAILURE_CACHE_SECONDS = 60
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.-]+)""", re.IGNORECASE)
_SNIFF_BYTES = 4096  # where browsers look for a <meta charset> (the HTML standard says the first 1024 bytes)
# Everything a fetch through the guard can raise for what a page or its server does.
_FETCH_ERRORS = (outbound.OutboundRefused, outbound.ResponseTooLarge, httpx.HTTPError, httpx.InvalidURL, OSError)


@dataclass(frozen=True)
class Card:
    """What a link card shows: the link (as the post has it), title, description and the prepared thumbnail."""

    url: str
    title: str
    description: str
    thumb: images.PreparedImage | None = None


@dataclass(frozen=True)
class CardResult:
    """A card, or None and why not (words for the author of the post)."""

    card: Card | None
    reason: str = ""


def fetch_card(url: str) -> CardResult:
    """The card for `url`, from the cache or the page itself; never raises for anything the page does."""
    if not app_settings.LINK_CARDS:
        return CardResult(None, "Link cards are switched off.")
    cache = shared_cache()
    key = "integrations:linkcard:" + hashlib.sha256(url.encode()).hexdigest()[:40]
    cached = cache.get(key)
    if cached is not None:
        return _from_cache(url, cached)
    result = _build(url)
    if result.card is None:
        cache.set(key, {"reason": result.reason}, FAILURE_CACHE_SECONDS)
    else:
        cache.set(key, _to_cache(result.card), CACHE_SECONDS)
    return result


def _to_cache(card: Card) -> dict:
    thumb = card.thumb
    entry: dict = {"title": card.title, "description": card.description, "thumb": None}
    if thumb is not None:
        entry["thumb"] = (thumb.data, thumb.mime, thumb.width, thumb.height, thumb.reencoded)  # ≤ THUMB_MAX_BYTES
    return entry


def _from_cache(url: str, entry: dict) -> CardResult:
    if "reason" in entry:
        return CardResult(None, entry["reason"])
    thumb = None
    if entry["thumb"]:
        thumb = images.PreparedImage(*entry["thumb"])
    return CardResult(Card(url, entry["title"], entry["description"], thumb))


def _get(url: str, max_bytes: int, accept: str) -> httpx.Response:
    return outbound.get(
        url,
        max_redirects=MAX_REDIRECTS,
        max_bytes=max_bytes,
        timeout=float(app_settings.LINK_CARD_TIMEOUT),
        headers={"User-Agent": USER_AGENT, "Accept": accept},
    )


def _failure(exc: Exception, what: str) -> str:
    """Why `what` ("The page", "The image") could not be read, in a user's words."""
    if isinstance(exc, outbound.OutboundRefused):
        return f"{what} may not be fetched ({exc.host}: {exc.reason})."
    if isinstance(exc, outbound.ResponseTooLarge):
        return f"{what} is too large to read."
    if isinstance(exc, httpx.TooManyRedirects):
        return f"{what} redirects more than {MAX_REDIRECTS} times."
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} did not answer within {app_settings.LINK_CARD_TIMEOUT:g} seconds."
    return f"{what} could not be reached."


def _build(url: str) -> CardResult:
    try:
        page = _get(url, PAGE_MAX_BYTES, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1")
    except _FETCH_ERRORS as exc:
        logger.info("no link card for %s: %r", url, exc)
        if isinstance(exc, outbound.ResponseTooLarge):
            return CardResult(None, f"The page is larger than {PAGE_MAX_BYTES // 1_000_000} MB.")
        return CardResult(None, _failure(exc, "The page"))
    if page.status_code != 200:
        return CardResult(None, f"The page answered with HTTP status {page.status_code}.")
    content_type = page.headers.get("content-type", "")
    mime, charset = _content_type(content_type)
    if mime and mime not in _HTML_TYPES:
        return CardResult(None, "The link is not a web page.")
    meta = parse(decode(page.content, charset))
    title = _bounded(meta.title, MAX_TITLE)
    description = _bounded(meta.description, MAX_DESCRIPTION)
    if not title and not description:
        return CardResult(None, "The page has no title or description.")
    thumb = _thumb(str(page.request.url), meta.image) if meta.image else None
    return CardResult(Card(url, title, description, thumb))


def _thumb(page_url: str, image_url: str) -> images.PreparedImage | None:
    try:
        target = httpx.URL(page_url).join(image_url)
    except httpx.InvalidURL:
        return None
    if target.scheme not in ("http", "https"):
        return None  # data:, javascript: and the like
    try:
        response = _get(str(target), IMAGE_MAX_BYTES, "image/*")
        if response.status_code != 200:
            return None
        return images.prepare(response.content, max_bytes=images.THUMB_MAX_BYTES)
    except _FETCH_ERRORS as exc:
        logger.info("no thumbnail from %s: %r", target, exc)
    except images.ImageError as exc:
        logger.info("no thumbnail from %s: %s", target, exc)
    return None


# --- reading the page -------------------------------------------------------------------------------------------
def _content_type(header: str) -> tuple[str, str | None]:
    if not header:
        return "", None
    message = Message()
    message["content-type"] = header
    return message.get_content_type(), message.get_param("charset")  # type: ignore[return-value]


def _codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "ignore")
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        return None


def decode(body: bytes, header_charset: str | None = None) -> str:
    """The page's text: a byte-order mark, else the header's charset, else `<meta charset>` (or http-equiv) in the
    first bytes, else UTF-8; undecodable bytes become replacement characters."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, errors="replace").lstrip("\ufeff")
    found = _META_CHARSET.search(body[:_SNIFF_BYTES])
    encoding = _codec(header_charset) or _codec(found.group(1) if found else None) or "utf-8"
    if encoding.startswith("utf-16"):  # a page that says utf-16 in ASCII bytes is not UTF-16 (the HTML standard)
        encoding = "utf-8"
    return body.decode(encoding, errors="replace")


@dataclass(frozen=True)
class PageMeta:
    title: str
    description: str
    image: str


class _MetaParser(HTMLParser):
    """Collects `<meta>` values by property or name (the first of each wins) and the first `<title>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: str | None = None
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            values = {name.lower(): value or "" for name, value in attrs}
            key = (values.get("property") or values.get("name") or "").strip().lower()
            if key and "content" in values:
                self.meta.setdefault(key, values["content"])
        elif tag == "title" and self.title is None:
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = "".join(self._title_parts)


def parse(html: str) -> PageMeta:
    """Title, description and image URL (as written: maybe relative) from Open Graph, Twitter or plain HTML."""
    parser = _MetaParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; whatever it had read before failing is kept
        logger.debug("html.parser gave up on a page", exc_info=True)
    meta = parser.meta

    def first(*keys: str) -> str:
        for key in keys:
            if value := _clean(meta.get(key, "")):
                return value
        return ""

    return PageMeta(
        title=first("og:title", "twitter:title") or _clean(parser.title or "".join(parser._title_parts)),
        description=first("og:description", "twitter:description", "description"),
        image=first("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"),
    )


def _clean(text: str) -> str:
    return " ".join(text.split())


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
