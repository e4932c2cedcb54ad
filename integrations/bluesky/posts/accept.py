"""Accepting a post from a user: a request checked and turned into a `PostDraft`, stored with its fixed plan.

Accepting posts is limited per user (`INTEGRATIONS_POST_RATES`, web and API together: `posts_throttled`, 429). A
post's mentions are looked up within `resolution.MENTIONS_DEADLINE` in all, and its link cards within
`CARDS_DEADLINE_FACTOR` times `INTEGRATIONS_LINK_CARD_TIMEOUT` (each card within one), so no request waits long on
pages or name servers. A scheduled post's link cards are read later, off the request (`cards`).
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from integrations.bluesky import options as bluesky_options
from integrations.bluesky.accounts import door
from integrations.bluesky.identity import resolution
from integrations.bluesky.posts import images, languages, references, richtext
from integrations.bluesky.posts.cards import CARD_PENDING_NOTE, built_card, cards_deadline, wanted_card
from integrations.bluesky.posts.plans import MAX_PLANNED_PARTS, PartInput, PlannedImage, StrongRef, blob_cid
from integrations.bluesky.posts.readiness import ensure_channel_ready
from integrations.bluesky.posts.schedule import check_schedule
from integrations.bluesky.posts.store import DraftPart, PostDraft, replace, store, store_claimed
from integrations.conf import app_settings
from integrations.exceptions import (
    EmptyPost,
    IntegrationDisabled,
    IntegrationError,
    MediaNotFound,
    PostsThrottled,
    TooManyParts,
    TooManyScheduled,
)
from integrations.models import Channel, Media, Post
from integrations.posting import retry
from integrations.posting.lease import hold_scheduled
from integrations.security import outbound
from integrations.security.throttling import over_rates

DAY = 24 * 60 * 60
# Posts a user may have accepted (web and API together), per window: scope -> (posts, seconds).
DEFAULT_POST_RATES = {"user": (60, 60), "user_day": (5000, DAY)}


@dataclass(frozen=True)
class ImageRequest:
    media_id: int
    alt: str = ""


@dataclass(frozen=True)
class PartRequest:
    """One part as a user writes it: text, up to 4 images with alt text, languages (empty: the default) and the
    link card: "auto" (built from the part's first link), None (no card), or the user's own
    `{"url", "title"?, "description"?}` (a missing title or description is the page's; the thumbnail is always the
    page's image, when it can be read)."""

    text: str
    images: tuple[ImageRequest, ...] = ()
    langs: tuple[str, ...] = ()
    link_card: str | dict[str, str] | None = "auto"


@dataclass(frozen=True)
class _Checked:
    """A part checked, before its mentions are resolved and its link card read."""

    request: PartRequest
    text: richtext.DetectedText
    images: list[PlannedImage]
    langs: list[str]


def accept(
    user: AbstractBaseUser,
    channel: Channel,
    parts: Sequence[PartRequest],
    *,
    reply_to: str = "",
    quote: str = "",
    default_lang: str = "",
    scheduled_at: datetime | None = None,
) -> Post:
    """Check what a user wants to publish and store it with its fixed plan, taken for its first attempt (then call
    `submit.publish(post.pk, claimed=post)`); with `scheduled_at`, stored `scheduled` for the worker instead (not
    taken).

    While the administrator has the integration switched off, a post is still accepted: a scheduled one waits for
    its time as usual, one to publish now is stored `waiting` with the reason (not taken; `publish` leaves it be),
    and both go out once it is switched on again.

    Raises the app's errors with codes a user can act on: channel_not_ready, too_many_parts, post_too_long (with
    both counts), too_many_images, media_not_found, unsupported_image, alt_text_required, invalid_reference,
    empty_post, scheduled_in_the_past, scheduled_too_far. Nothing is stored unless everything is right. Link cards
    are fetched last and never refuse a post: a part whose card cannot be built is stored without one and with the
    reason (`card_note`).
    """
    switched_on = _admit(user, scheduled_at, new=True)
    draft = draft_of(user, channel, parts, reply_to=reply_to, quote=quote, default_lang=default_lang, when=scheduled_at)
    if scheduled_at is not None:
        return store(draft)
    if switched_on:
        return store_claimed(draft)
    return retry.blocked(store(draft), IntegrationDisabled())


def edit(
    post: Post,
    parts: Sequence[PartRequest],
    *,
    scheduled_at: datetime | None = None,
    reply_to: str = "",
    quote: str = "",
    default_lang: str = "",
) -> Post:
    """Replace a scheduled post's content (and time, if given), checked as `accept` checks a new post.

    The post is held with a lease while the new content is checked (link cards are fetched), so no worker starts it
    meanwhile; its plan is replaced only because it was never attempted (see `schedule.reschedule`).
    """
    held = hold_scheduled(post.pk)
    try:
        when = scheduled_at or held.scheduled_at
        _admit(held.user, when, new=False)
        draft = draft_of(
            held.user, held.channel, parts, reply_to=reply_to, quote=quote, default_lang=default_lang, when=when
        )
        return replace(held, draft)
    except BaseException:
        held.release_hold()
        raise


def _admit(user: AbstractBaseUser, scheduled_at: datetime | None, *, new: bool) -> bool:
    """Count the post against the user's limits and check its time (and, for a `new` scheduled post, the user's
    scheduled posts); whether the integration is switched on."""
    _count_post(user)
    if scheduled_at is not None:
        check_schedule(scheduled_at)
        if new:
            _check_scheduled_quota(user)
    return bluesky_options.enabled()


def draft_of(
    user: AbstractBaseUser,
    channel: Channel,
    parts: Sequence[PartRequest],
    *,
    reply_to: str,
    quote: str,
    default_lang: str,
    when: datetime | None,
) -> PostDraft:
    """The post a user asks for, checked (see `accept`) and planned: its mentions resolved and, unless it is
    scheduled (`when`), its link cards read."""
    ensure_channel_ready(channel)
    max_parts = min(app_settings.POST_MAX_PARTS, MAX_PLANNED_PARTS)
    if not 1 <= len(parts) <= max_parts:
        raise TooManyParts(str(max_parts))
    reply = references.resolve(channel, reply_to) if reply_to else None
    quoted = references.resolve(channel, quote).ref if quote else None
    checked = [_checked(user, part, default_lang) for part in parts]
    dids = _mention_dids(channel, [handle for part in checked for handle in part.text.mentions])
    # Cards last: pages are fetched only for a post that is otherwise right, so no thumbnail is stored for nothing;
    # a scheduled post's are read by a background task instead (`cards.build_pending_cards`).
    with outbound.deadline(cards_deadline()):
        drafted = tuple(
            _draft_part(user, part, dids, quoted=quoted if index == 0 else None, scheduled=when is not None)
            for index, part in enumerate(checked)
        )
    return PostDraft(user, channel, drafted, reply=reply, quote=quoted, scheduled_at=when)


def _checked(user: AbstractBaseUser, part: PartRequest, default_lang: str) -> _Checked:
    images.check_image_count(len(part.images))
    text = richtext.detect(part.text)  # PostTooLong before any handle is resolved
    if not text.text.strip() and not part.images:
        raise EmptyPost()
    planned_images = [_planned_image(user, image) for image in part.images]
    langs = languages.normalize_langs(list(part.langs), default_lang or languages.default_lang(None))
    return _Checked(part, text, planned_images, langs)


def _draft_part(
    user: AbstractBaseUser, part: _Checked, dids: dict[str, str | None], *, quoted: StrongRef | None, scheduled: bool
) -> DraftPart:
    """A checked part with its mentions resolved and its link card read now (or, `scheduled`, left pending)."""
    rich = part.text.resolved(dids)
    has_embed = bool(part.images) or quoted is not None
    wanted, note = wanted_card(part.request.link_card, rich.facets, has_embed=has_embed)
    external = None
    if wanted is not None and scheduled:
        note = CARD_PENDING_NOTE
    elif wanted is not None:
        external, note = built_card(user, wanted)
    planned = PartInput(text=rich.text, facets=rich.facets, langs=part.langs, images=part.images, external=external)
    return DraftPart(planned, card_note=note, pending_card=wanted if scheduled else None)


def _count_post(user: AbstractBaseUser) -> None:
    """Count one post for `user` against each limit; raise PostsThrottled (with retry_after) when one is used up."""
    retry_after = over_rates("posts", str(user.pk), {**DEFAULT_POST_RATES, **app_settings.POST_RATES})
    if retry_after is not None:
        raise PostsThrottled(retry_after=retry_after)


def _check_scheduled_quota(user: AbstractBaseUser) -> None:
    """`too_many_scheduled` when the user has `INTEGRATIONS_SCHEDULED_POSTS_PER_USER` posts waiting for their time,
    with the seconds until the next of them goes out."""
    limit = app_settings.SCHEDULED_POSTS_PER_USER
    waiting = Post.objects.filter(user=user, status=Post.Status.SCHEDULED)
    if waiting.count() < limit:
        return
    soonest = waiting.order_by("scheduled_at").values_list("scheduled_at", flat=True).first()
    seconds = int((soonest - timezone.now()).total_seconds()) if soonest else 60
    raise TooManyScheduled(f"{limit:,}", retry_after=max(1, seconds))


def _mention_dids(channel: Channel, handles: list[str]) -> dict[str, str | None]:
    """The DIDs a post's mentions name: each handle's own DNS or well-known record, all at once (cached); the
    channel's PDS (`resolveHandle`) for the rest (handles it hosts that no public name server knows, or a site whose
    network reaches no DNS). A mention without a DID stays plain text."""
    until = time.monotonic() + resolution.MENTIONS_DEADLINE  # for all of them, the channel's PDS included
    found = resolution.lookup_handles(handles, deadline=resolution.MENTIONS_DEADLINE)

    def ask_pds(client: Any, handle: str) -> str | None:
        # The deadline covers the question only: a session refresh `door.call` may need first is not cut short.
        with outbound.deadline(until - time.monotonic()):
            return client.resolve_handle(handle)

    def resolve_handle(handle: str) -> str | None:
        if isinstance(did := found.get(handle), str):
            return did
        if until - time.monotonic() <= 0:
            return None  # out of time: the mention stays text
        try:
            return door.call(channel, lambda client, token: ask_pds(client, handle))
        except IntegrationError:
            return None

    return richtext.resolve_mentions(handles, resolve_handle)


def _planned_image(user: AbstractBaseUser, request: ImageRequest) -> PlannedImage:
    media = Media.objects.filter(pk=request.media_id, owner=user).first()
    if media is None:
        raise MediaNotFound()
    alt = images.check_alt(request.alt, required=app_settings.POST_ALT_TEXT_REQUIRED)
    with media.file.open("rb") as handle:
        cid = blob_cid(handle.read())
    return PlannedImage(
        cid=cid, mime=media.mime, size=media.size, width=media.width, height=media.height, alt=alt, media_id=media.pk
    )
