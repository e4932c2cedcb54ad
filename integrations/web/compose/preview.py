"""What the composer shows of a post before it is sent: each part's text as it will be sent (links shortened) with
its links, mentions and tags marked up, the counter's words, and the whole thread as Bluesky will show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from integrations.adapter import describe
from integrations.bluesky import services
from integrations.exceptions import IntegrationError
from integrations.models import Channel, Media
from integrations.web.compose.cards import CardView

BYTES_SHOWN_FROM = 2700  # the byte count is shown once a text gets close to MAX_BYTES


def counter_text(length: services.TextLength) -> str:
    """What the composer's counter says (the page's script says the same, from the same translated words)."""
    text = _("%(count)s of %(max)s characters") % {
        "count": number_format(length.graphemes, force_grouping=True),
        "max": number_format(services.MAX_GRAPHEMES, force_grouping=True),
    }
    if length.bytes >= BYTES_SHOWN_FROM or length.bytes > services.MAX_BYTES:
        text += " · " + _("%(count)s of %(max)s bytes") % {
            "count": number_format(length.bytes, force_grouping=True),
            "max": number_format(services.MAX_BYTES, force_grouping=True),
        }
    return text


def script_words() -> dict[str, str]:
    """The words composer.js says, translated here so the page's script and `counter_text` share one catalogue."""
    return {
        "count": str(_("%(count)s of %(max)s characters")),
        "bytes": str(_("%(count)s of %(max)s bytes")),
        "too-long": str(_("Too long:")),
        "approximate": str(_("(approximate: Preview shows the exact count)")),
        "part": str(_("Part %(number)s:")),
        "stale": str(_("Changed since this preview: choose Preview to see it again.")),
        "added": str(_("Part %(number)s added.")),
        "removed": str(_("Part %(number)s removed.")),
        "card-removed": str(_("Link card removed.")),
        "card-restored": str(_("Link card added back.")),
        "alt-required": describe(services.AltTextRequired()).message,
        "no-text": str(_("(no text)")),
        "sending": str(_("Sending…")),
    }


@dataclass(frozen=True)
class PartPreview:
    """One part as it will be sent: its marked-up text, its length and the images it carries (with alt text)."""

    html: SafeString
    length: services.TextLength
    images: list[tuple[Media, str]]

    @property
    def fits(self) -> bool:
        return self.length.fits

    @property
    def counter(self) -> str:
        return counter_text(self.length)


def preview(text: str, attached: list[tuple[Media, str]] | None = None) -> PartPreview:
    """The text as it will be sent (prepared, links shortened) with its links, mentions and tags marked up as
    bsky.app shows them. Mentions are linked by handle here; one that does not resolve when publishing stays text."""
    prepared = services.prepare_text(text)
    sent, facets = services.shorten_links(prepared, services.detect_facets(prepared))
    data = sent.encode("utf-8")
    pieces: list[str] = []
    cursor = 0
    for facet in facets:
        pieces.append(format_html("{}", data[cursor : facet.byte_start].decode("utf-8")))
        visible = data[facet.byte_start : facet.byte_end].decode("utf-8")
        pieces.append(format_html(_FACET_LINK, facet.kind, _facet_href(facet), visible))
        cursor = facet.byte_end
    pieces.append(format_html("{}", data[cursor:].decode("utf-8")))
    return PartPreview(mark_safe("".join(pieces)), services.count_text(sent), list(attached or []))  # noqa: S308


_FACET_LINK = '<a class="facet {}" href="{}" target="_blank" rel="noopener noreferrer nofollow">{}</a>'


def _facet_href(facet: services.DetectedFacet) -> str:
    if facet.kind == "link":
        return facet.value
    if facet.kind == "mention":
        return f"https://bsky.app/profile/{quote(facet.value)}"
    return f"https://bsky.app/hashtag/{quote(facet.value)}"


@dataclass(frozen=True)
class ThreadPreview:
    """The whole post as Bluesky will show it: who posts it (the channel), when (None: now), the post it replies
    to, and each part with its text, images, link card and (on the first) the quoted post."""

    channel: Channel | None
    when: datetime | None
    reply_to: services.Target | None
    quote: services.Target | None
    parts: list[tuple[PartPreview, CardView]]


def look_up_target(channel: Channel | None, address: str) -> tuple[services.Target | None, str]:
    """The post at `address` for a preview, read through `channel`; else None and why not (in words)."""
    if channel is None or not address:
        return None, ""
    try:
        return services.look_up_post(channel, address), ""
    except IntegrationError as exc:
        return None, describe(exc).message
