"""Link cards of posts: which card a part asks for, building it from its page (its thumbnail kept as an upload), and
a scheduled post's cards read off the request that accepted it.

A scheduled post's link cards are not read on the request that accepts it: its parts keep a pending card
(`card["pending"]`), planned without it, and a background task (`integrations.tasks.build_link_cards`, right after
the commit: `cards_pending`) reads the pages and replans the post with them, only while the post is still scheduled
and was never attempted. A card still pending when the post falls due is read then, on its first attempt, before
anything is sent (the new plan is stored first); on any later attempt it is dropped, and `card_note` says why.
Either way the plan never changes once anything may have been sent.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.dispatch import Signal

from integrations.bluesky.posts import linkcards, media, replan, richtext
from integrations.bluesky.posts.plans import ExternalCard
from integrations.bluesky.words import mid_sentence
from integrations.conf import app_settings
from integrations.exceptions import PostBusy, PostNotScheduled
from integrations.models import Media, Post, PostPart
from integrations.posting.lease import locked_scheduled
from integrations.security import outbound
from integrations.signals import send_on_commit

logger = logging.getLogger(__name__)

# A post's link cards are read within INTEGRATIONS_LINK_CARD_TIMEOUT each, and this many times that in all.
CARDS_DEADLINE_FACTOR = 2
CARD_PENDING_NOTE = "The link card is read from the page before the post's time."
CARD_LATE_NOTE = "No link card: the page could not be read before the post's first attempt."
NO_TIME_REASON = "The post's other link cards took all the time there was."
MAX_CARD_NOTE = 300  # PostPart.card_note's length

# Sent (with `sender=Post` and the post as `post`) once a post with pending link cards is committed: a worker reads
# them (`integrations.tasks` connects it).
cards_pending = Signal()

Built = tuple[ExternalCard | None, str]  # a card read from its page (None: none) and why it is not what was asked


@dataclass(frozen=True)
class WantedCard:
    """The link card a part asks for: its link, and the user's own words when they gave them (`explicit`: a card
    they edited, kept even when the page cannot be read)."""

    url: str
    title: str | None = None
    description: str | None = None
    explicit: bool = False

    def as_json(self) -> dict[str, Any]:
        """What a part keeps while its card is still to be read (`PostPart.card` with `pending`)."""
        return {
            "pending": True,
            "uri": self.url,
            "title": self.title,
            "description": self.description,
            "explicit": self.explicit,
            "media": None,
        }

    @classmethod
    def from_json(cls, card: dict[str, Any]) -> "WantedCard":
        return cls(card["uri"], card.get("title"), card.get("description"), bool(card.get("explicit")))


def cards_deadline() -> float:
    """Seconds a post's link cards may take in all."""
    return CARDS_DEADLINE_FACTOR * app_settings.LINK_CARD_TIMEOUT


def card_json(card: ExternalCard | None) -> dict[str, Any] | None:
    """What a part keeps of its link card (`PostPart.card`)."""
    if card is None:
        return None
    media_id = card.thumb.media_id if card.thumb else None
    return {"uri": card.uri, "title": card.title, "description": card.description, "media": media_id}


def first_link(facets: Sequence[dict[str, Any]]) -> str | None:
    """The URI of the first link in a part's facets (the full URI, however the text shortens it)."""
    return next((uri for _, _, uri in richtext.link_spans(facets)), None)


def wanted_card(
    request: str | dict[str, str] | None, facets: Sequence[dict[str, Any]], *, has_embed: bool
) -> tuple[WantedCard | None, str]:
    """The card a part asks for (None: none) and, when it asked for one it cannot have, why not."""
    if request is None or not app_settings.LINK_CARDS:
        return None, ""
    if has_embed:  # a record has one embed: images or a quote take the card's place
        explicit = isinstance(request, dict)
        return None, "The images or the quoted post are shown instead of the link card." if explicit else ""
    if isinstance(request, dict):
        return WantedCard(request["url"], request.get("title"), request.get("description"), explicit=True), ""
    url = first_link(facets)
    return (WantedCard(url) if url else None), ""


def built_card(user: AbstractBaseUser, wanted: WantedCard) -> Built:
    """The card, read from its page now (within the deadline in force, on `user`'s budget), and, when it has none
    (or no thumbnail) though one was expected, why not. A card that cannot be built never stops the post."""
    if not app_settings.LINK_CARDS:  # switched off since the post was accepted
        return None, "No link card: link cards are switched off."
    if outbound.remaining() == 0:
        result = linkcards.CardResult(None, NO_TIME_REASON)
    else:
        result = linkcards.fetch_card(wanted.url, user_id=user.pk)
    fetched = result.card
    if wanted.explicit:
        title, description, note = _explicit_words(wanted, result)
    elif fetched is None:
        return None, f"No link card: {mid_sentence(result.reason)}"[:MAX_CARD_NOTE]
    else:
        title, description, note = fetched.title, fetched.description, ""
    thumb = media.thumb_media(user, fetched.thumb) if fetched and fetched.thumb else None
    if fetched and fetched.thumb and thumb is None:
        note = "No thumbnail: your storage for images is full."
    return ExternalCard(uri=wanted.url, title=title, description=description, thumb=thumb), note[:MAX_CARD_NOTE]


def _explicit_words(wanted: WantedCard, result: Any) -> tuple[str, str, str]:
    """A card the user edited: their title and description where they gave them, else the page's; and, when it has
    no thumbnail, why not."""
    fetched = result.card
    title = wanted.title if wanted.title is not None else (fetched.title if fetched else "")
    description = wanted.description if wanted.description is not None else (fetched.description if fetched else "")
    reason = mid_sentence(result.reason) if result.reason else "the page has no usable image."
    note = "" if fetched and fetched.thumb else f"No thumbnail: {reason}"
    return title, description, note


def is_pending(part: PostPart) -> bool:
    """Whether the part's link card is still to be read."""
    return bool(part.card and part.card.get("pending"))


def build_cards_soon(post: Post) -> None:
    """Have a worker read the post's pending link cards as soon as it can, once the post is committed."""
    send_on_commit(cards_pending, Post, post=post)


def _read_cards(user: AbstractBaseUser, parts: Sequence[PostPart]) -> dict[int, Built]:
    """Each pending part's card read now (network time: call outside any transaction), by part id."""
    with outbound.deadline(cards_deadline()):
        return {part.pk: built_card(user, WantedCard.from_json(part.card)) for part in parts}


def _apply_cards(post: Post, cards: dict[int, Built], read_for: dict[int, dict]) -> set[int]:
    """Store the cards read for `post`'s parts (under its row lock) and replan it; the ids of the parts that took
    theirs. A part whose pending card changed since it was read (an edit) keeps what it has now."""
    taken: set[int] = set()
    embedded = False
    for part in post.parts.all():
        if part.pk not in cards or part.card != read_for.get(part.pk):
            continue
        external, note = cards[part.pk]
        part.card, part.card_note = card_json(external), note
        if external is not None:
            part.record = {**part.record, "embed": external.as_record()}
            embedded = True
        part.save(update_fields=["card", "card_note", "record"])
        media.link_media([part], post.scheduled_at or post.created_at)  # its thumbnail is kept for it
        taken.add(part.pk)
    if embedded:  # the same keys and times; new CIDs down the thread
        replan.replan(post, post.scheduled_at or post.created_at)
    return taken


def _discard_thumbs(cards: dict[int, Built], taken: set[int]) -> None:
    """Remove the thumbnails read for cards no part took, unless a post uses them (a thumbnail is stored once per
    content, so another post may share it)."""
    unused = [card.thumb.media_id for pk, (card, _) in cards.items() if pk not in taken and card and card.thumb]
    for upload in Media.objects.filter(pk__in=unused).exclude(parts__isnull=False):
        upload.discard()


def build_pending_cards(post_id: int) -> int:
    """Read a scheduled post's pending link cards and replan it with them; how many parts took a card (or the
    reason it has none). Nothing changes unless the post is still scheduled and was never attempted (see
    `schedule.reschedule`): a post already on its way keeps its plan, and `submit.publish` settles what is left."""
    post = Post.objects.filter(pk=post_id).select_related("user").first()
    if post is None or post.status != Post.Status.SCHEDULED or post.attempts:
        return 0
    pending = [part for part in post.parts.all() if is_pending(part)]
    if not pending:
        return 0
    cards = _read_cards(post.user, pending)
    taken: set[int] = set()
    try:
        with transaction.atomic():
            taken = _apply_cards(locked_scheduled(post_id), cards, {part.pk: part.card for part in pending})
    except (Post.DoesNotExist, PostNotScheduled, PostBusy):
        logger.info("link cards of post %s not applied: it changed meanwhile", post_id)
    _discard_thumbs(cards, taken)
    return len(taken)


def settle_pending_cards(post: Post, parts: list[PostPart]) -> list[PostPart]:
    """The parts of a post about to be sent, with no card pending: on its first attempt (nothing of it was ever
    sent) the cards are read now and the new plan is stored before anything is written; on a later one a pending
    card is dropped (the plan, planned without it, stays as it is) and the note says why."""
    pending = [part for part in parts if is_pending(part)]
    first = post.attempts == 1 and not any(part.uri for part in parts)
    cards = _read_cards(post.user, pending) if first else {part.pk: (None, CARD_LATE_NOTE) for part in pending}
    taken: set[int] = set()
    with transaction.atomic():
        locked = Post.objects.select_for_update().get(pk=post.pk)
        if locked.status == Post.Status.PUBLISHING and locked.attempts == post.attempts:  # still this attempt's
            taken = _apply_cards(locked, cards, {part.pk: part.card for part in pending})
    _discard_thumbs(cards, taken)
    return list(post.parts.order_by("index"))
