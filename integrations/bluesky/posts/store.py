"""A post as accepted (`PostDraft`), stored with its fixed plan: a record key per part (a TID derived from the post
and its createdAt), the exact record and its CID (`plans.py`). Nothing about the plan changes once anything may have
been sent."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from integrations.bluesky.posts import media
from integrations.bluesky.posts.cards import MAX_CARD_NOTE, WantedCard, build_cards_soon, card_json
from integrations.bluesky.posts.plans import MAX_PLANNED_PARTS, PartInput, StrongRef, part_keys, plan_thread
from integrations.bluesky.posts.references import Reference
from integrations.bluesky.posts.replan import keys_taken
from integrations.exceptions import TooManyParts
from integrations.models import Channel, Post, PostPart
from integrations.posting import signals
from integrations.posting.lease import LEASE, locked_scheduled

# How many parts `create_post` takes (a request is held to `INTEGRATIONS_POST_MAX_PARTS` when it is accepted).
DEFAULT_MAX_PARTS = 25


@dataclass(frozen=True)
class DraftPart:
    """One part as it will be planned (`part`), why it has no link card (or no thumbnail) if it asked for one
    (`card_note`), and, for a scheduled post, the link card still to be read (`pending_card`)."""

    part: PartInput
    card_note: str = ""
    pending_card: WantedCard | None = None

    def card(self) -> dict[str, Any] | None:
        """What the stored part keeps of its link card."""
        return self.pending_card.as_json() if self.pending_card else card_json(self.part.external)


@dataclass(frozen=True)
class PostDraft:
    """A post checked and ready to be stored: who writes it where, its parts, the post it replies to and the one it
    quotes, and when it is due (None: now)."""

    user: AbstractBaseUser
    channel: Channel
    parts: tuple[DraftPart, ...]
    reply: Reference | None = None
    quote: StrongRef | None = None
    scheduled_at: datetime | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.parts) <= MAX_PLANNED_PARTS:
            raise TooManyParts(str(MAX_PLANNED_PARTS))


def store(draft: PostDraft) -> Post:
    """Store a post with its fixed plan (keys, records, CIDs); nothing is sent yet. A scheduled one is stored
    `scheduled` (never taken: the worker publishes it at its time) and its records carry its time as createdAt."""
    return _store_new(draft, claim=False)


def store_claimed(draft: PostDraft) -> Post:
    """Store a post to publish now, already taken for its first attempt (one commit instead of two): call
    `submit.publish(post.pk, claimed=post)` next. Should the process die in between, the lease runs out and
    `publish_due` picks the post up. A scheduled draft is stored as `store` stores it."""
    return _store_new(draft, claim=draft.scheduled_at is None)


def replace(held: Post, draft: PostDraft) -> Post:
    """Replace the plan of a scheduled post held for an edit (`accept.edit`), keeping its id and when it was written
    (`created_at`): an edit changes what is said and when, not when it was written."""
    with transaction.atomic():
        post = locked_scheduled(held.pk, held=True)
        signals.cancel_wake_ups(post)  # its new time gets its own (below)
        for name, value in _fields(draft, claim=False, now=timezone.now()).items():
            setattr(post, name, value)
        post.save()
        post.parts.all().delete()
        _plan(post, draft, draft.scheduled_at or post.created_at)
    return post


def create_post(
    user: AbstractBaseUser,
    channel: Channel,
    parts: Sequence[PartInput],
    *,
    claim: bool = False,
    scheduled_at: datetime | None = None,
) -> Post:
    """Store parts already planned as they are (no reply, quote or link card to read): `store` (or, with `claim`,
    `store_claimed`) for a post that did not come through `accept`."""
    if not 1 <= len(parts) <= DEFAULT_MAX_PARTS:
        raise TooManyParts(str(DEFAULT_MAX_PARTS))
    draft = PostDraft(user, channel, tuple(DraftPart(part) for part in parts), scheduled_at=scheduled_at)
    return store_claimed(draft) if claim else store(draft)


def _fields(draft: PostDraft, *, claim: bool, now: datetime) -> dict[str, Any]:
    return {
        "user": draft.user,
        "channel": draft.channel,
        "reply_to_uri": draft.reply.ref.uri if draft.reply else "",
        "quote_uri": draft.quote.uri if draft.quote else "",
        "scheduled_at": draft.scheduled_at,
        "status": Post.Status.SCHEDULED if draft.scheduled_at else Post.Status.PUBLISHING,
        "attempts": 1 if claim else 0,
        "lease_until": now + LEASE if claim else None,
    }


def _store_new(draft: PostDraft, *, claim: bool) -> Post:
    created_at = timezone.now()
    fields = _fields(draft, claim=claim, now=created_at)
    with transaction.atomic():
        post = Post.objects.create(created_at=created_at, **fields)
        _plan(post, draft, draft.scheduled_at or created_at)
    return post


def _plan(post: Post, draft: PostDraft, record_time: datetime) -> None:
    """Plan the draft's records for `record_time` and store them as the post's parts (inside its transaction)."""
    channel = draft.channel
    keys = part_keys(post.pk, record_time, len(draft.parts), keys_taken(channel, record_time))
    planned = plan_thread(
        did=channel.did,
        keys=keys,
        created_at=record_time,
        parts=[each.part for each in draft.parts],
        reply_to=(draft.reply.root, draft.reply.ref) if draft.reply else None,
        quote=draft.quote,
    )
    if draft.scheduled_at is not None:
        signals.wake_at(post)
    if any(each.pending_card for each in draft.parts):
        build_cards_soon(post)
    post.planned_parts = PostPart.objects.bulk_create(
        PostPart(
            post=post,
            index=index,
            text=each.part.text,
            langs=list(each.part.langs),
            images=[{"media": image.media_id, "alt": image.alt} for image in each.part.images],
            card=each.card(),
            card_note=each.card_note[:MAX_CARD_NOTE],
            rkey=plan.rkey,
            record=plan.record,
            expected_cid=plan.cid,
        )
        for index, (each, plan) in enumerate(zip(draft.parts, planned, strict=True))
    )
    media.link_media(post.planned_parts, record_time)
