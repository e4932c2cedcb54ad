"""Link cards (`app.bsky.embed.external`): a page's title, description and image, fetched by the server.

`fetch_card(url)` reads the page through the outbound guard (`integrations/security/outbound.py`) as a URL a user named
(`Reach.PUBLIC`): only public addresses over https, whatever `INTEGRATIONS_ALLOW_INSECURE_PDS` says, every redirect
checked (at most 5), the socket pinned to the checked address, at most 1 MB read (decoded: one layer of gzip or
deflate, counted as it streams), and the page and its image together within `INTEGRATIONS_LINK_CARD_TIMEOUT` (5 s)
in all, however slowly the server sends. The metadata comes from Open Graph, then Twitter, then plain HTML
(`<title>`, `<meta name=description>`); the page's charset is the Content-Type header's, else its `<meta charset>`
(or http-equiv), else UTF-8 with replacement characters, and only a charset a browser knows (a label of the WHATWG
Encoding Standard) is honoured: `rot13`, `base64`, `charset*=` and the like fall back as if there were none. Titles
and descriptions keep no control characters (NUL included): they are stored in records. The image is read through
the same guard and prepared as a thumbnail within the lexicon's 1,000,000 bytes; an image that cannot be read or
made small enough leaves a card without a thumbnail.

Reading pages costs the server bandwidth a user chooses, so with `user_id` a fetch counts against that user's
budget (`INTEGRATIONS_LINK_CARD_RATES`: pages read and bytes received per window); over it, no page is read and the
result says when cards are read again. A card from the cache costs nothing.

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

from integrations.adapter import humanize_seconds
from integrations.bluesky.posts import images
from integrations.conf import app_settings
from integrations.security import bodies, outbound
from integrations.security.throttling import over_rate, shared_cache
from integrations.text import clean_text

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
# Everything a fetch through the guard can raise for what a page or its server does (a URL it cannot even parse is
# an InvalidURL or a ValueError).
_FETCH_ERRORS = (outbound.OutboundRefused, httpx.HTTPError, httpx.InvalidURL, OSError, ValueError)
DEFAULT_RATES = {"pages": (100, 3600), "bytes": (50_000_000, 3600)}

# The labels of the WHATWG Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels), by the Python
# codec that decodes them as a browser does. Nothing else is honoured: a charset outside this table (`rot13`,
# `base64`, `zlib`, `hex`, `bz2`, `undefined`, `utf-7`, ...) is as if the page named none. The "replacement" and
# "x-user-defined" encodings are left out too: they fall back to UTF-8.
_WEB_ENCODINGS = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2",
    "iso8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3",
    "iso8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4",
    "iso8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 iso_8859-5:1988",
    "iso8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e "
    "iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    "iso8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 "
    "iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "iso8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 "
    "iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    "iso8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "mac-roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    # Browsers read ASCII and Latin-1 pages as windows-1252.
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 "
    "iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 latin5 "
    "windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk gb18030",
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc_jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022_jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 "
    "windows-949",
    "utf-16-be": "unicodefffe utf-16be",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
}
_CODEC_BY_LABEL = {label: codec for codec, labels in _WEB_ENCODINGS.items() for label in labels.split()}


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


def fetch_card(url: str, *, user_id: int | None = None) -> CardResult:
    """The card for `url`, from the cache or the page itself; never raises for anything the page does.

    `user_id`: whose request this is; a page read (not a cached card) counts against their budget, and over it no
    page is read (that answer is not cached: it is about the user, not the page)."""
    if not app_settings.LINK_CARDS:
        return CardResult(None, "Link cards are switched off.")
    cache = shared_cache()
    key = "integrations:linkcard:" + hashlib.sha256(url.encode()).hexdigest()[:40]
    cached = cache.get(key)
    if cached is not None:
        return _from_cache(url, cached)
    if user_id is not None and (wait := _over_budget(user_id)):
        return CardResult(
            None, f"Too many pages were read for your link cards lately; the next in {humanize_seconds(wait)}."
        )
    meter = outbound.Meter()
    try:
        result = _build(url, meter)
    finally:
        if user_id is not None and meter.wire_bytes:
            _spend(user_id, meter.wire_bytes)
    if result.card is None:
        if outbound.remaining() != 0:  # not cut short by an enclosing deadline (the page may be fine)
            cache.set(key, {"reason": result.reason}, FAILURE_CACHE_SECONDS)
    else:
        cache.set(key, _to_cache(result.card), CACHE_SECONDS)
    return result


def _rates() -> dict[str, tuple[int, int]]:
    return {**DEFAULT_RATES, **app_settings.LINK_CARD_RATES}


def _over_budget(user_id: int) -> int | None:
    """Seconds until the user may have another page read, when their pages or bytes are used up; else None (and
    this page is counted)."""
    rates = _rates()
    byte_limit, byte_window = rates["bytes"]
    wait = over_rate("link-card-bytes", str(user_id), byte_limit, byte_window, cost=0)  # look, do not count
    if wait is not None:
        return wait
    return over_rate("link-card-pages", str(user_id), *rates["pages"])


def _spend(user_id: int, wire_bytes: int) -> None:
    over_rate("link-card-bytes", str(user_id), *_rates()["bytes"], cost=wire_bytes)


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


def _get(url: str, max_bytes: int, accept: str, meter: outbound.Meter) -> httpx.Response:
    return outbound.get(
        url,
        reach=outbound.Reach.PUBLIC,
        max_redirects=MAX_REDIRECTS,
        max_bytes=max_bytes,
        timeout=app_settings.LINK_CARD_TIMEOUT,
        headers={"User-Agent": USER_AGENT, "Accept": accept},
        meter=meter,
    )


def _failure(exc: Exception, what: str) -> str:
    """Why `what` ("The page", "The image") could not be read, in a user's words."""
    if isinstance(exc, outbound.OutboundRefused):
        return f"{what} may not be fetched ({exc.host}: {exc.reason})."
    if isinstance(exc, bodies.ResponseTooLarge):
        return f"{what} is too large to read."
    if isinstance(exc, bodies.UnsupportedEncoding):
        return f"{what} is compressed in a way link cards do not read (only gzip or deflate, once)."
    if isinstance(exc, httpx.DecodingError):
        return f"{what} was sent compressed, and the compressed data is damaged."
    if isinstance(exc, httpx.TooManyRedirects):
        return f"{what} redirects more than {MAX_REDIRECTS} times."
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} could not be read within {app_settings.LINK_CARD_TIMEOUT:g} seconds."
    return f"{what} could not be reached."


def _build(url: str, meter: outbound.Meter) -> CardResult:
    with outbound.deadline(app_settings.LINK_CARD_TIMEOUT):  # the page and its image together
        try:
            page = _get(url, PAGE_MAX_BYTES, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1", meter)
        except _FETCH_ERRORS as exc:
            logger.info("no link card for %s: %r", url, exc)
            if isinstance(exc, bodies.ResponseTooLarge):
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
        thumb = _thumb(str(page.request.url), meta.image, meter) if meta.image else None
    return CardResult(Card(url, title, description, thumb))


def _thumb(page_url: str, image_url: str, meter: outbound.Meter) -> images.PreparedImage | None:
    try:
        target = httpx.URL(page_url).join(image_url)
    except (httpx.InvalidURL, ValueError):
        return None
    if target.scheme not in ("http", "https"):
        return None  # data:, javascript: and the like
    try:
        response = _get(str(target), IMAGE_MAX_BYTES, "image/*", meter)
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
    """The media type and the `charset` parameter of a Content-Type header (an RFC 2231 `charset*=` is no charset:
    browsers do not read it either)."""
    if not header:
        return "", None
    message = Message()
    message["content-type"] = header
    charset = message.get_param("charset")
    return message.get_content_type(), charset if isinstance(charset, str) else None


def _codec(label: str | bytes | None) -> str | None:
    """The Python codec for a charset label a browser honours (the WHATWG Encoding Standard's), else None."""
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    return _CODEC_BY_LABEL.get(label.strip(" \t\n\f\r").lower())


def decode(body: bytes, header_charset: str | None = None) -> str:
    """The page's text: a byte-order mark, else the header's charset, else `<meta charset>` (or http-equiv) in the
    first bytes, else UTF-8; undecodable bytes become replacement characters. Only charsets a browser knows count;
    any other falls back to the next source."""
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
    """One line of storable text: no control characters (NUL included), white space runs made one space."""
    return " ".join(clean_text(text).split())


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
