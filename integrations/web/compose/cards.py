"""The link card a part will carry, as the composer shows it, and the signed link its thumbnail is shown from."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.core import signing
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from integrations.bluesky import services
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError

CARD_MODES = ("auto", "edited", "none")  # a part's link card: the page's, the user's own words, or none


@dataclass(frozen=True)
class CardView:
    """A part's link card as the composer shows it. `link`: the part's first link ("" when none: nothing shown);
    `url`: the card's link when there is a card to show; `note`: why there is none."""

    link: str = ""
    mode: str = "auto"
    url: str = ""
    title: str = ""
    description: str = ""
    thumb: str = ""  # where the page shows the thumbnail from ("" when the card has none)
    note: str = ""
    covered: bool = False  # the part has images: they take the card's place

    @property
    def host(self) -> str:
        """The card's site as its link names it, with the port when the link has one (example.com:8443)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port}" if host and port else host

    @property
    def shown(self) -> bool:
        return bool(self.url) and self.mode != "none" and not self.covered

    def as_json(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "url": self.url,
            "title": self.title,
            "description": self.description,
            "thumb": self.thumb,
            "host": self.host,
            "note": self.note,
        }


def card_link(text: str) -> str | None:
    """The link a part's card is for: its first, as publishing finds it (a bare domain gets https://)."""
    try:
        facets = services.detect_facets(services.prepare_text(text))
    except IntegrationError:
        return None
    return next((facet.value for facet in facets if facet.kind == "link"), None)


THUMB_LINK_SALT = "integrations.composer.card-thumb"
THUMB_LINK_MAX_AGE = 3600  # as long as a card stays cached


def thumb_link(user_id: int, link: str) -> str:
    """Where the composer shows a card's thumbnail from: the image view with a token naming the page, signed for this
    user. A page on another site cannot make a signed-in user's browser fetch a page of its choosing through it."""
    token = signing.dumps({"user": user_id, "url": link}, salt=THUMB_LINK_SALT, compress=True)
    return f"{reverse('integrations:link-card-image')}?{urlencode({'card': token})}"


def thumb_link_target(user_id: int, token: str) -> str | None:
    """The page a thumbnail link names, when the token is this user's and less than an hour old; else None."""
    try:
        value = signing.loads(token, salt=THUMB_LINK_SALT, max_age=THUMB_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("user") != user_id or not isinstance(value.get("url"), str):
        return None
    return value["url"]


def card_for(
    text: str,
    *,
    covered: bool = False,
    mode: str = "auto",
    url: str = "",
    title: str | None = None,
    description: str | None = None,
    user_id: int | None = None,
) -> CardView:
    """The card a part with this text will carry: the page's (read through `services.fetch_card`, cached; a page
    read counts against `user_id`'s link-card budget), or the user's words when `url` (the card they saw) is still
    the text's first link. No page is read while link cards are switched off, for a part without a link, one whose
    images take the card's place, or one whose card is removed. The thumbnail is shown from a link signed for
    `user_id` (`thumb_link`)."""
    link = card_link(text) if app_settings.LINK_CARDS else None
    if link is None:
        return CardView(mode=mode)
    if covered or mode == "none":
        return CardView(link=link, mode=mode, url=link, covered=covered)
    if mode == "edited" and url != link:
        mode = "auto"  # the text links elsewhere now: that page's card
    result = services.fetch_card(link, user_id=user_id)
    page = result.card
    thumb = thumb_link(user_id, link) if page and page.thumb and user_id is not None else ""
    if url == link and title is not None and description is not None:
        return CardView(link, mode, link, title, description, thumb)
    if page is None:
        reason = services.mid_sentence(result.reason)
        return CardView(link, mode, note=str(_("No link card: %(reason)s") % {"reason": reason}))
    return CardView(link, mode, link, page.title, page.description, thumb)
