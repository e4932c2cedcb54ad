"""Publishing on a channel, exactly once.

- `create_post` fixes the plan when a post is accepted: a record key per part (a TID derived from the post and its
  createdAt), the exact record and its CID (`plans.py`). Nothing about it changes afterwards.
- `publish` claims the post under its row lock with a lease (a second worker leaves it alone; a dead worker's lease
  runs out), uploads the blobs (re-uploading the same bytes is harmless), then writes every record that is not
  known to be there in one `applyWrites` (all or nothing) through the session lifecycle.
- After an ambiguous failure (timeout, reset, a 5xx: the write may have landed), and before every later attempt,
  the planned keys are read back (`getRecord`): a record with the planned CID is published; the rest are written.
  The reference PDS answers an already-used key with a 500, which is reconciled the same way, never blindly retried.
- A scheduled post (`scheduled_at`) is stored `scheduled`, not claimed; its plan carries its time as createdAt.
  Until its first attempt it can be cancelled, rescheduled or edited (its plan recomputed: nothing was ever sent,
  so a new plan cannot publish twice). `publish_due` claims due posts in batches: on PostgreSQL with
  `select_for_update(skip_locked=True)` (two workers never take the same row, nor wait for each other), on SQLite
  under the write lock (`transaction_mode=IMMEDIATE`), each with a lease. A scheduled post whose channel cannot
  publish when it falls due waits with the reason and goes out when the channel (or the integration) is back,
  unless it is more than `INTEGRATIONS_SCHEDULE_MISSED_AFTER` late: then it fails as `missed`.
- A scheduled post's link cards are not read on the request that accepts it: its parts keep a pending card
  (`card["pending"]`), planned without it, and a background task (`integrations.tasks.build_link_cards`, right after
  the commit) reads the pages and replans the post with them, only while the post is still scheduled and was never
  attempted. A card still pending when the post falls due is read then, on its first attempt, before anything is
  sent (the new plan is stored first); on any later attempt it is dropped, and `card_note` says why. Either way the
  plan never changes once anything may have been sent.
- Accepting posts is limited per user (`INTEGRATIONS_POST_RATES`, web and API together: `posts_throttled`, 429).
  A post's mentions are looked up within `resolution.MENTIONS_DEADLINE` in all, and its link cards within
  `CARDS_DEADLINE_FACTOR` times `INTEGRATIONS_LINK_CARD_TIMEOUT` (each card within one), so no request waits
  long on pages or name servers.
- Temporary faults are retried by a background task with backoff (about an hour in all; a 429's Retry-After is
  honoured); permanent refusals fail the post with the PDS's reason; a channel that needs reconnection fails it
  with that reason and a retry after reconnecting publishes the same plan.
"""

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from integrations.adapter import describe, get_adapter
from integrations.bluesky import options as bluesky_options
from integrations.bluesky.accounts import lifecycle
from integrations.bluesky.accounts.health import health_state
from integrations.bluesky.identity import resolution
from integrations.bluesky.posts.plans import (
    MAX_PLANNED_PARTS,
    POST_COLLECTION,
    ExternalCard,
    PartInput,
    PlannedImage,
    StrongRef,
    at_uri,
    blob_cid,
    iso_time,
    part_keys,
    plan_thread,
    record_cid,
)
from integrations.bluesky.xrpc import errors
from integrations.clock import shown
from integrations.conf import app_settings
from integrations.exceptions import (
    ChannelNotReady,
    EmptyPost,
    IntegrationDisabled,
    IntegrationError,
    MediaNotFound,
    PostBusy,
    PostDeleting,
    PostGone,
    PostNotRetryable,
    PostNotScheduled,
    PostsThrottled,
    ScheduledInThePast,
    ScheduledTooFar,
    ScheduleMissed,
    StorageFull,
    TooManyParts,
    TooManyScheduled,
    TooManyUploads,
)
from integrations.models import Channel, Media, Post, PostPart, post_due_at
from integrations.security import outbound
from integrations.security.throttling import over_rate, over_rates
from integrations.signals import post_failed, post_published, send_on_commit

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
# Waits between attempts after temporary faults: about an hour in all before the post fails for good.
RETRY_DELAYS = (15, 30, 60, 120, 300, 600, 900, 1200)
READY_STATES = frozenset({"active", "expiring", "degraded"})
# A scheduled time must be at least this far ahead when it is set.
SCHEDULE_MIN_LEAD = timedelta(seconds=1)
# ...and at most this far (record keys are TIDs, which end in 2255; a year is plenty).
SCHEDULE_MAX_AHEAD = timedelta(days=366)
# A due scheduled post whose channel cannot publish is looked at again after this long.
BLOCKED_RECHECK = timedelta(seconds=60)
# How many due posts a worker claims in one transaction.
CLAIM_BATCH = 10
DAY = 24 * 60 * 60
# Posts a user may have accepted (web and API together), per window: scope -> (posts, seconds).
DEFAULT_POST_RATES = {"user": (60, 60), "user_day": (5000, DAY)}
# A post's link cards are read within INTEGRATIONS_LINK_CARD_TIMEOUT each, and this many times that in all.
CARDS_DEADLINE_FACTOR = 2
CARD_PENDING_NOTE = "The link card is read from the page before the post's time."
CARD_LATE_NOTE = "No link card: the page could not be read before the post's first attempt."
NO_TIME_REASON = "The post's other link cards took all the time there was."
MAX_CARD_NOTE = 300  # PostPart.card_note's length


@dataclass(frozen=True)
class Outcome:
    """What an attempt did: the post as stored now, and the error when it did not publish."""

    post: Post
    error: IntegrationError | None = None


def ensure_can_publish(channel: Channel) -> None:
    """Raise what stops `channel` from publishing now: the integration is off, or the channel needs attention."""
    if not bluesky_options.enabled():
        raise IntegrationDisabled()
    ensure_channel_ready(channel)


def ensure_channel_ready(channel: Channel) -> None:
    """Raise ChannelNotReady when `channel` needs its owner's attention before it can publish (whether the
    administrator has the integration switched on is another matter: posts wait for that)."""
    state = health_state(channel)
    if state not in READY_STATES:
        label, _ = get_adapter().describe_health(state)
        raise ChannelNotReady(f"@{channel.handle}: {label}.")


def create_post(
    user: AbstractBaseUser,
    channel: Channel,
    parts: Sequence[PartInput],
    *,
    reply_to: tuple[StrongRef, StrongRef] | None = None,
    quote: StrongRef | None = None,
    reply_to_uri: str = "",
    quote_uri: str = "",
    max_parts: int = 25,
    claim: bool = False,
    notes: Sequence[str] = (),
    scheduled_at: datetime | None = None,
    replacing: Post | None = None,
    pending: Sequence["WantedCard | None"] = (),
) -> Post:
    """Store a post with its fixed plan (keys, records, CIDs); nothing is sent yet.

    With `scheduled_at`, the post is stored `scheduled` (never claimed) and its records carry that time as
    createdAt. `replacing`: a scheduled post held for an edit (`edit`): its plan is replaced, keeping its id and
    when it was written (`created_at`).

    With `claim`, the post is stored already taken for its first attempt (one commit instead of two): call
    `publish(post.pk, claimed=post)` next. Should the process die in between, the lease runs out and
    `publish_due` picks the post up. `notes`: per part, why it has no link card (or no thumbnail), if anything.
    `pending`: per part of a scheduled post, the link card still to be read (`build_pending_cards`), if any.
    """
    if not 1 <= len(parts) <= max_parts:
        raise TooManyParts(str(max_parts))
    pending_cards = list(pending) or [None] * len(parts)
    created_at = timezone.now()
    claim = claim and scheduled_at is None  # a scheduled post is published by the worker at its time
    fields = {
        "user": user,
        "channel": channel,
        "created_at": created_at,
        "reply_to_uri": reply_to_uri,
        "quote_uri": quote_uri,
        "scheduled_at": scheduled_at,
        "status": Post.Status.SCHEDULED if scheduled_at else Post.Status.PUBLISHING,
        "attempts": 1 if claim else 0,
        "lease_until": created_at + LEASE if claim else None,
    }
    with transaction.atomic():
        if replacing is not None:
            post = _locked_scheduled(replacing.pk, held=True)
            _cancel_wake_ups(post)  # its new time gets its own (below)
            del fields["created_at"]  # an edit changes what is said and when, not when it was written
            for name, value in fields.items():
                setattr(post, name, value)
            created_at = post.created_at
            post.save()
            post.parts.all().delete()
        else:
            post = Post.objects.create(**fields)
        record_time = scheduled_at or created_at
        keys = part_keys(post.pk, record_time, len(parts), _keys_taken(channel, record_time))
        planned = plan_thread(
            did=channel.did, keys=keys, created_at=record_time, parts=parts, reply_to=reply_to, quote=quote
        )
        if scheduled_at is not None:
            _wake_at(post)
        if any(pending_cards):
            _build_cards_soon(post)
        post.planned_parts = PostPart.objects.bulk_create(
            PostPart(
                post=post,
                index=index,
                text=part.text,
                langs=list(part.langs),
                images=[{"media": image.media_id, "alt": image.alt} for image in part.images],
                card=pending_cards[index].as_json() if pending_cards[index] else _card_json(part.external),
                card_note=(notes[index] if notes else "")[:MAX_CARD_NOTE],
                rkey=plan.rkey,
                record=plan.record,
                expected_cid=plan.cid,
            )
            for index, (part, plan) in enumerate(zip(parts, planned, strict=True))
        )
        _link_media(post.planned_parts, record_time)
    return post


# Keys another post could share with one planned for a moment lie this close to it (`plans.part_keys`: a post's keys
# are its moment plus its part's index in microseconds, moved on by its length per 1,024 posts at one moment).
KEY_NEIGHBOURHOOD = timedelta(milliseconds=100)


def _keys_taken(channel: Channel, moment: datetime, *, besides: Post | None = None) -> set[str]:
    """The record keys other posts of the channel's repository planned near `moment`, read under a lock on the
    repository (held until the transaction ends), so two posts planned at once cannot both choose the same key.
    Call inside the transaction that stores the plan. Every channel of the account counts (two users may connect
    the same one)."""
    if connection.vendor == "postgresql":
        lock = int.from_bytes(hashlib.sha256(f"repo:{channel.did}".encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
    # SQLite: the transaction holds the database's write lock from its start (transaction_mode=IMMEDIATE).
    near = (moment - KEY_NEIGHBOURHOOD, moment + KEY_NEIGHBOURHOOD)
    posts = Post.objects.filter(channel__did=channel.did).filter(
        Q(scheduled_at__range=near) | Q(scheduled_at__isnull=True, created_at__range=near)
    )
    if besides is not None:
        posts = posts.exclude(pk=besides.pk)
    return set(PostPart.objects.filter(post__in=posts).values_list("rkey", flat=True))


def _link_media(parts: Sequence[PostPart], due: datetime) -> None:
    """Record which uploads each part needs, so none is removed while the post is not published, and move each
    upload's `used_at` to when the post is due (if later): the clean-up looks only at uploads whose last use is a
    day past. Call inside the transaction that stores the parts. Marking them locks their rows: the clean-up either
    waits for this transaction (and then sees them in use) or has removed one already (`MediaNotFound`)."""
    links = [(part.pk, media_id) for part in parts for media_id in dict.fromkeys(media_ids(part))]
    if not links:
        return
    wanted = {media_id for _, media_id in links}
    marked = Media.objects.filter(pk__in=wanted).update(used_at=Greatest("used_at", Value(due)))
    if marked < len(wanted):
        raise MediaNotFound()  # removed by the clean-up while the post was being checked
    through = PostPart.media.through
    through.objects.bulk_create(
        [through(postpart_id=part_id, media_id=media_id) for part_id, media_id in links], ignore_conflicts=True
    )


def _card_json(card: ExternalCard | None) -> dict[str, Any] | None:
    if card is None:
        return None
    media = card.thumb.media_id if card.thumb else None
    return {"uri": card.uri, "title": card.title, "description": card.description, "media": media}


def media_ids(part: PostPart) -> list[int]:
    """The uploads a part's record needs as blobs: its images, then its link card's thumbnail."""
    ids = [image["media"] for image in part.images if image["media"]]
    if part.card and part.card.get("media"):
        ids.append(part.card["media"])
    return ids


def _locked(post_id: int) -> Post:
    """The post under its row lock (call inside a transaction); `PostGone` when it was deleted meanwhile."""
    post = Post.objects.select_for_update().select_related("channel").filter(pk=post_id).first()
    if post is None:
        raise PostGone()
    return post


def _claim(post_id: int, *, retry: bool) -> Post | None:
    """Take the post for one attempt under its row lock; None when there is nothing to do (already published)."""
    with transaction.atomic():
        post = _locked(post_id)
        now = timezone.now()
        if post.status == Post.Status.PUBLISHED:
            return None
        if post.status == Post.Status.DELETING:
            raise PostGone()
        if post.lease_until and post.lease_until > now:
            raise PostBusy(retry_after=int((post.lease_until - now).total_seconds()) + 1)
        abandoned = post.status == Post.Status.PUBLISHING and post.attempts > 0  # a dead worker's lease ran out
        if retry and post.status not in (Post.Status.FAILED, Post.Status.WAITING) and not abandoned:
            raise PostNotRetryable()
        post.status = Post.Status.PUBLISHING
        post.lease_until = now + LEASE
        post.attempts += 1
        post.next_attempt_at = None
        post.save(update_fields=["status", "lease_until", "attempts", "next_attempt_at"])
    return post


def publish(post_id: int, *, retry: bool = False, claimed: Post | None = None) -> Outcome:
    """One attempt at publishing a post (see the module's docstring); the post's new state is stored.

    `claimed`: the post as `create_post(..., claim=True)` or `accept` returned it, already taken for this attempt.
    """
    fresh = claimed is not None and claimed.pk == post_id
    if fresh and claimed.status != Post.Status.PUBLISHING:
        return Outcome(claimed)  # accepted to wait (the integration is switched off): nothing to attempt now
    post = claimed if fresh else _claim(post_id, retry=retry)
    if post is None:
        published = Post.objects.filter(pk=post_id).first()
        if published is None:
            raise PostGone()
        return Outcome(published)
    channel = post.channel
    # A post just accepted carries its parts (and was just checked): no second read of either. One `claim_due`
    # took carries neither.
    parts = getattr(post, "planned_parts", None) if fresh else None
    checked = parts is not None
    parts = parts if parts is not None else list(post.parts.all())
    try:
        return _attempt(post, channel, parts, checked=checked)
    except _DeletionRequested:
        return _delete_instead(post, channel, parts)


class _DeletionRequested(Exception):
    """The owner deleted the post during this attempt (`delete` marked it): the attempt deletes it instead."""


def _attempt(post: Post, channel: Channel, parts: Sequence[PostPart], *, checked: bool) -> Outcome:
    try:
        if not checked:
            ensure_can_publish(channel)
        if any(_is_pending(part) for part in parts):
            parts = _settle_pending_cards(post, parts)
        _upload_blobs(channel, parts)
        if Post.objects.filter(pk=post.pk, status=Post.Status.DELETING).exists():
            raise _DeletionRequested()  # deleted while the blobs went up: nothing is written
        _write(channel, parts, reconcile_first=post.attempts > 1)
    except IntegrationError as exc:
        if isinstance(exc, errors.TemporaryError) or exc.temporary:
            # The write may have landed: look before deciding (a second failure leaves it for the next attempt).
            try:
                if _reconcile(channel, parts):
                    return Outcome(_published(post, parts))
            except IntegrationError as again:
                logger.info("could not reconcile post %s after %s (%s)", post.pk, exc.code, again.code)
        return Outcome(_failed_attempt(post, exc), exc)
    return Outcome(_published(post, parts))


def _delete_instead(post: Post, channel: Channel, parts: Sequence[PostPart]) -> Outcome:
    """End an attempt whose post was deleted meanwhile: delete every record of it that landed, then the post (this
    attempt still holds the lease, so nothing else touches it). Should Bluesky not answer, the post stays marked
    for deletion with the reason, and its owner's next delete finishes it."""
    post.status = Post.Status.DELETING
    try:
        _delete_records(channel, parts)
    except IntegrationError as exc:
        _deletion_failed(post, exc)
        return Outcome(post, exc)
    Post.objects.filter(pk=post.pk).delete()
    logger.info("post %s deleted during its attempt, with every record that landed", post.pk)
    post.error_code, post.error_message = PostGone.code, describe(PostGone()).message
    return Outcome(post, PostGone())


def _store_state(post: Post, fields: Sequence[str]) -> None:
    """Save the outcome of an attempt, unless the post was marked for deletion meanwhile (`_DeletionRequested`)."""
    updated = (
        Post.objects.filter(pk=post.pk)
        .exclude(status=Post.Status.DELETING)
        .update(**{name: getattr(post, name) for name in fields})
    )
    if not updated:
        raise _DeletionRequested()


def _upload_blobs(channel: Channel, parts: Sequence[PostPart]) -> None:
    """Upload every image and card thumbnail of the post (the same bytes always give the same blob, so this is safe
    to repeat)."""
    for part in parts:
        if part.uri:
            continue
        for media_id in media_ids(part):
            media = Media.objects.filter(pk=media_id).first()
            if media is None:
                continue  # published earlier and cleaned up: its blob is already in the repo
            with media.file.open("rb") as handle:
                data = handle.read()
            cid = lifecycle.call(channel, lambda client, token, d=data, m=media.mime: client.upload_blob(token, d, m))
            logger.debug("uploaded blob %s for post %s", cid, part.post_id)


def _reconcile(channel: Channel, parts: Sequence[PostPart]) -> bool:
    """Read back every planned key not yet known to be written; mark those holding the planned record. True when
    every part is there. A key holding another record is a conflict, never overwritten."""
    for part in parts:
        if part.uri:
            continue
        cid = lifecycle.call(
            channel, lambda client, token, key=part.rkey: client.record_cid(token, channel.did, POST_COLLECTION, key)
        )
        if cid is None:
            continue
        if cid != part.expected_cid:
            raise errors.RecordConflict(f"{part.rkey} holds {cid}, not the planned {part.expected_cid}")
        part.uri, part.cid = _uri(channel, part), cid
        part.save(update_fields=["uri", "cid"])
    return all(part.uri for part in parts)


def _uri(channel: Channel, part: PostPart) -> str:
    return f"at://{channel.did}/{POST_COLLECTION}/{part.rkey}"


def _write(channel: Channel, parts: Sequence[PostPart], *, reconcile_first: bool) -> None:
    """Write the records still missing in one atomic applyWrites."""
    if reconcile_first and _reconcile(channel, parts):
        return
    missing = [part for part in parts if not part.uri]
    if not missing:
        return
    writes = [
        {
            "$type": "com.atproto.repo.applyWrites#create",
            "collection": POST_COLLECTION,
            "rkey": p.rkey,
            "value": p.record,
        }
        for p in missing
    ]
    results = lifecycle.call(channel, lambda client, token: client.apply_writes(token, channel.did, writes))
    for part, result in zip(missing, results + [{}] * (len(missing) - len(results)), strict=True):
        cid = str(result.get("cid") or part.expected_cid)
        if cid != part.expected_cid:
            logger.warning("post part %s landed with cid %s, planned %s", part.pk, cid, part.expected_cid)
        part.uri, part.cid = str(result.get("uri") or _uri(channel, part)), cid  # stored with the post's new state


def _published(post: Post, parts: Sequence[PostPart]) -> Post:
    # The uploads stay: another post may use them (`purge_unused_media` removes them once none does).
    with transaction.atomic():
        for part in parts:  # a thread is short: plain updates cost less than bulk_update's CASE expressions
            PostPart.objects.filter(pk=part.pk).update(uri=part.uri, cid=part.cid)
        post.status = Post.Status.PUBLISHED
        post.published_at = timezone.now()
        post.lease_until = None
        post.error_code = post.error_message = ""
        _store_state(post, ["status", "published_at", "lease_until", "error_code", "error_message"])
        send_on_commit(post_published, Post, post=post)
    logger.info("post %s published: %s", post.pk, ", ".join(part.uri for part in parts))
    return post


def retry_delay(attempts: int, error: IntegrationError) -> int | None:
    """Seconds until the next attempt after a temporary fault, or None when the post should fail for good.

    A rate limit (Bluesky's write budget: 5,000 points an hour, 35,000 a day) delays a post as long as it says,
    however often: it never fails one. Other faults get about an hour of attempts.
    """
    if isinstance(error, errors.RateLimited):
        return max(error.retry_after or 0, RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])
    if attempts > len(RETRY_DELAYS):
        return None
    return max(error.retry_after or 0, RETRY_DELAYS[attempts - 1])


def _failed_attempt(post: Post, error: IntegrationError) -> Post:
    """Store what the attempt's failure means for the post: waiting for a retry, or failed with the reason."""
    # Waits, not fails, while the administrator has the integration switched off (or a scheduled post's channel
    # cannot publish when it falls due).
    if isinstance(error, IntegrationDisabled) or (post.scheduled_at and isinstance(error, ChannelNotReady)):
        return _blocked(post, error)
    message = describe(error).message
    now = timezone.now()
    delay = retry_delay(post.attempts, error) if error.temporary else None
    post.lease_until = None
    post.error_code, post.error_message = error.code, message
    if delay is not None:
        post.status = Post.Status.WAITING
        post.next_attempt_at = now + timedelta(seconds=delay)
    else:
        post.status = Post.Status.FAILED
        post.next_attempt_at = None
    _store_state(post, ["status", "lease_until", "error_code", "error_message", "next_attempt_at"])
    if post.status == Post.Status.WAITING:
        schedule_retry(post)
    else:
        send_on_commit(post_failed, Post, post=post, error_code=error.code, message=message)
    logger.info("post %s not published (%s): %s", post.pk, error.code, post.status)
    return post


def _blocked(post: Post, error: IntegrationError) -> Post:
    """A scheduled post fell due while its channel cannot publish (or the integration is off), or a post was written
    while the integration is off: it waits with the reason, looked at again by `publish_due`, unless it is already
    too late (then it fails as missed). Nothing was sent, so the attempt does not count."""
    if _too_late(post):
        return _missed(post)
    post.attempts = max(post.attempts - 1, 0)
    post.lease_until = None
    post.status = Post.Status.WAITING
    post.next_attempt_at = timezone.now() + BLOCKED_RECHECK
    post.error_code, post.error_message = error.code, describe(error).message
    _store_state(post, ["attempts", "status", "lease_until", "error_code", "error_message", "next_attempt_at"])
    logger.info("scheduled post %s is due but waits (%s)", post.pk, error.code)
    return post


def _too_late(post: Post, now: datetime | None = None) -> bool:
    limit = timedelta(seconds=int(app_settings.SCHEDULE_MISSED_AFTER))
    return post.scheduled_at is not None and (now or timezone.now()) - post.scheduled_at > limit


def _missed(post: Post) -> Post:
    """Fail a scheduled post that could not go out in time; its owner decides (publish it now, or delete it)."""
    error = ScheduleMissed(shown(post.scheduled_at))
    message = describe(error).message
    post.lease_until = post.next_attempt_at = None
    post.status = Post.Status.FAILED
    post.error_code, post.error_message = error.code, message
    _store_state(post, ["status", "lease_until", "error_code", "error_message", "next_attempt_at"])
    send_on_commit(post_failed, Post, post=post, error_code=error.code, message=message)
    logger.info("scheduled post %s missed its time (%s)", post.pk, post.scheduled_at)
    return post


def schedule_retry(post: Post) -> None:
    """Enqueue the next attempt for when the post is due (Django's Tasks framework)."""
    from integrations.tasks import publish_post

    transaction.on_commit(lambda: publish_post.using(run_after=post.next_attempt_at).enqueue(post.pk))


# How long a delete waits for an attempt that is running (an attempt takes seconds; its lease, two minutes at most).
DELETE_WAIT = 15.0
_DELETE_POLL = 0.2


def delete(post: Post) -> None:
    """Delete a post: first, from Bluesky, every record of it that landed, then the post. A scheduled post that was
    never attempted is simply removed (nothing was sent).

    A delete never races an attempt: under the post's row lock it is marked `deleting`, so no attempt starts any
    more. When none is running, this takes the post's lease and deletes. When one is running, that attempt writes
    nothing more if it has not written yet and, when it ends, deletes every record that landed and the post; this
    waits for it (`DELETE_WAIT`), then answers `PostDeleting` if it is still running. The records are read back
    before they are deleted (`getRecord`), so one that landed although its answer was lost goes too, and a record
    of someone else's under a planned key is left alone. If Bluesky cannot be reached, the post stays `deleting`
    with the reason, and deleting it again finishes the job.
    """
    deadline = time.monotonic() + DELETE_WAIT
    while True:
        with transaction.atomic():
            row = _locked(post.pk)
            now = timezone.now()
            if row.status == Post.Status.SCHEDULED and not row.attempts:
                _cancel_wake_ups(row)  # as they were stored: a wake-up at its time
                row.delete()  # nothing was ever sent (an edit that holds it will find it gone)
                logger.info("scheduled post %s deleted", row.pk)
                return
            running = row.lease_until is not None and row.lease_until > now
            row.status = Post.Status.DELETING
            if not running:
                row.lease_until = now + LEASE
            row.save(update_fields=["status", "lease_until"])
        if not running:
            _delete_now(row)
            return
        if not _wait_for_attempt(row.pk, deadline):
            return  # the attempt deleted it
        if time.monotonic() >= deadline:
            lease = Post.objects.filter(pk=row.pk).values_list("lease_until", flat=True).first()
            wait = int((lease - timezone.now()).total_seconds()) + 1 if lease else 1
            raise PostDeleting(retry_after=max(wait, 1))


def _wait_for_attempt(post_id: int, deadline: float) -> bool:
    """Wait until the attempt holding the post ends (or `deadline`); False when the post is gone meanwhile."""
    while time.monotonic() < deadline:
        row = Post.objects.filter(pk=post_id).values_list("lease_until", flat=True)
        if not row:
            return False
        if row[0] is None or row[0] <= timezone.now():
            return True
        time.sleep(_DELETE_POLL)
    return Post.objects.filter(pk=post_id).exists()


def _delete_now(post: Post) -> None:
    """With the post's lease held: its records from Bluesky, then the post; on failure the post stays `deleting`
    with the reason (lease released) and the error is raised."""
    parts = list(post.parts.all())
    try:
        if post.attempts:
            _delete_records(post.channel, parts)
    except IntegrationError as exc:
        _deletion_failed(post, exc)
        raise
    with transaction.atomic():
        _cancel_wake_ups(post)  # a retry still waiting
        post.delete()
    logger.info("post %s deleted", post.pk)


def _delete_records(channel: Channel, parts: Sequence[PostPart]) -> None:
    """Delete every planned record that holds this post's record, replies first (none outlives its parent); a key
    that is empty is skipped, and one holding another record is left as it is."""
    for part in sorted(parts, key=lambda part: part.index, reverse=True):
        cid = lifecycle.call(
            channel, lambda client, token, key=part.rkey: client.record_cid(token, channel.did, POST_COLLECTION, key)
        )
        if cid is None:
            continue
        if cid != part.expected_cid:
            logger.warning("post part %s: key %s holds another record (%s); left as it is", part.pk, part.rkey, cid)
            continue
        lifecycle.call(
            channel, lambda client, token, key=part.rkey: client.delete_record(token, channel.did, POST_COLLECTION, key)
        )


def _deletion_failed(post: Post, error: IntegrationError) -> None:
    message = describe(error).message
    Post.objects.filter(pk=post.pk).update(
        status=Post.Status.DELETING, lease_until=None, error_code=error.code, error_message=message
    )
    post.error_code, post.error_message, post.lease_until = error.code, message, None
    logger.info("post %s could not be deleted from Bluesky yet (%s)", post.pk, error.code)


def _due(now: datetime) -> Q:
    scheduled = Q(status=Post.Status.SCHEDULED, scheduled_at__lte=now) & (
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)  # a lease here: held for an edit
    )
    waiting = Q(status=Post.Status.WAITING, next_attempt_at__lte=now)
    abandoned = Q(status=Post.Status.PUBLISHING, lease_until__lte=now)
    return scheduled | waiting | abandoned


def _due_queryset(now: datetime) -> QuerySet[Post]:
    """Due posts, those that fell due first first, through the index of due times (`integrations_post_due`): its
    range `due_at <= now` holds only the posts that may be due, whatever the size of the table. (Walking the posts
    in id order, or one partial index per state, made the planner read every post.)"""
    return Post.objects.alias(due_at=post_due_at()).filter(due_at__lte=now).filter(_due(now)).order_by("due_at", "pk")


def next_due_at(after: datetime) -> datetime | None:
    """When the next post falls due after `after` (its scheduled time, its retry time or its lease's end), read
    from the index of due times; None when no post waits."""
    later = Post.objects.annotate(due_at=post_due_at()).filter(due_at__gt=after).order_by("due_at")
    return later.values_list("due_at", flat=True).first()


def due_posts(now: datetime | None = None) -> list[int]:
    """Posts whose next attempt is due: scheduled for now or earlier, waiting past their retry time, or taken by a
    worker whose lease ran out (it died mid-publish: the next attempt reconciles first, so nothing is written
    twice)."""
    return list(_due_queryset(now or timezone.now()).values_list("pk", flat=True))


def claim_due(now: datetime | None = None, *, limit: int = CLAIM_BATCH, skip: Sequence[int] = ()) -> list[Post]:
    """Take up to `limit` due posts for one attempt each (those that fell due first), in one short transaction, with
    a lease.

    On PostgreSQL, rows another worker is claiming are skipped (`skip_locked`): workers never take the same post nor
    wait for each other. On SQLite the write lock taken at BEGIN (`transaction_mode=IMMEDIATE`) serialises claims.
    A scheduled post found more than `SCHEDULE_MISSED_AFTER` late (no worker ran) fails as missed instead: it is
    returned `failed`, not taken.
    """
    now = now or timezone.now()
    features = connection.features
    with transaction.atomic():
        queryset = _due_queryset(now).exclude(pk__in=list(skip)).select_related("channel")
        if features.has_select_for_update:
            queryset = queryset.select_for_update(
                skip_locked=features.has_select_for_update_skip_locked,
                of=("self",) if features.has_select_for_update_of else (),
            )
        claimed = []
        for post in queryset[:limit]:
            if post.status == Post.Status.SCHEDULED and _too_late(post, now):
                claimed.append(_missed(post))
                continue
            post.status = Post.Status.PUBLISHING
            post.lease_until = timezone.now() + LEASE
            post.attempts += 1
            post.next_attempt_at = None
            post.save(update_fields=["status", "lease_until", "attempts", "next_attempt_at"])
            claimed.append(post)
    return claimed


def publish_due(now: datetime | None = None) -> Counter:
    """One attempt at every due post, claimed a batch at a time (several workers may run this at once); what
    happened, counted by the posts' new status."""
    outcome: Counter = Counter()
    seen: list[int] = []
    while True:
        batch = claim_due(now, skip=seen)
        if not batch:
            return outcome
        for post in batch:
            seen.append(post.pk)
            missed = post.status == Post.Status.FAILED
            outcome[post.status if missed else publish(post.pk, claimed=post).post.status] += 1


def as_reference(post: Post) -> list[dict[str, Any]]:
    """The parts' addresses once published (uri, cid), in order."""
    return [{"uri": part.uri, "cid": part.cid} for part in post.parts.all()]


# --- accepting a post from a user --------------------------------------------------------------------------------
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


def accept(
    user: AbstractBaseUser,
    channel: Channel,
    parts: Sequence[PartRequest],
    *,
    reply_to: str = "",
    quote: str = "",
    default_lang: str = "",
    scheduled_at: datetime | None = None,
    replacing: Post | None = None,
) -> Post:
    """Check what a user wants to publish and store it with its fixed plan, taken for its first attempt (then call
    `publish(post.pk, claimed=post)`); with `scheduled_at`, stored `scheduled` for the worker instead (not taken).

    While the administrator has the integration switched off, a post is still accepted: a scheduled one waits for
    its time as usual, one to publish now is stored `waiting` with the reason (not taken; `publish` leaves it be),
    and both go out once it is switched on again.

    Raises the app's errors with codes a user can act on: channel_not_ready, too_many_parts, post_too_long (with
    both counts), too_many_images, media_not_found, unsupported_image, alt_text_required, invalid_reference,
    empty_post, scheduled_in_the_past, scheduled_too_far. Nothing is stored unless everything is right. Link cards
    are fetched last and never refuse a post: a part whose card cannot be built is stored without one and with the
    reason (`card_note`).
    """
    from integrations.bluesky.posts import images, references, richtext

    _count_post(user)
    if scheduled_at is not None:
        check_schedule(scheduled_at)
        if replacing is None:
            _check_scheduled_quota(user)
    switched_on = bluesky_options.enabled()
    ensure_channel_ready(channel)
    max_parts = min(int(app_settings.POST_MAX_PARTS), MAX_PLANNED_PARTS)
    if not 1 <= len(parts) <= max_parts:
        raise TooManyParts(str(max_parts))
    reply = references.resolve(channel, reply_to) if reply_to else None
    quoted = references.resolve(channel, quote).ref if quote else None

    detected = []
    for part in parts:
        images.check_image_count(len(part.images))
        text = richtext.detect(part.text)  # PostTooLong before any handle is resolved
        if not text.text.strip() and not part.images:
            raise EmptyPost()
        planned_images = [_planned_image(user, image, images) for image in part.images]
        langs = richtext.normalize_langs(list(part.langs), default_lang or richtext.default_lang(None))
        detected.append((part, text, planned_images, langs))
    dids = _mention_dids(channel, [handle for _, text, _, _ in detected for handle in text.mentions])
    # Cards last: pages are fetched only for a post that is otherwise right, so no thumbnail is stored for nothing;
    # a scheduled post's are read by a background task instead (`build_pending_cards`).
    inputs, notes, pending = [], [], []
    with outbound.deadline(_cards_deadline()):
        for index, (part, text, planned_images, langs) in enumerate(detected):
            rich = text.resolved(dids)
            has_embed = bool(planned_images) or (index == 0 and quoted is not None)
            wanted, note = _wanted_card(part.link_card, rich.facets, has_embed=has_embed)
            external = None
            if wanted is not None and scheduled_at is not None:
                note = CARD_PENDING_NOTE
            elif wanted is not None:
                external, note = _built_card(user, wanted)
            inputs.append(
                PartInput(text=rich.text, facets=rich.facets, langs=langs, images=planned_images, external=external)
            )
            notes.append(note)
            pending.append(wanted if scheduled_at is not None else None)
    post = create_post(
        user,
        channel,
        inputs,
        reply_to=(reply.root, reply.ref) if reply else None,
        quote=quoted,
        reply_to_uri=reply.ref.uri if reply else "",
        quote_uri=quoted.uri if quoted else "",
        max_parts=max_parts,
        claim=switched_on,
        notes=notes,
        scheduled_at=scheduled_at,
        replacing=replacing,
        pending=pending,
    )
    if not switched_on and scheduled_at is None:
        return _blocked(post, IntegrationDisabled())
    return post


def _count_post(user: AbstractBaseUser) -> None:
    """Count one post for `user` against each limit; raise PostsThrottled (with retry_after) when one is used up."""
    retry_after = over_rates("posts", str(user.pk), {**DEFAULT_POST_RATES, **app_settings.POST_RATES})
    if retry_after is not None:
        raise PostsThrottled(retry_after=retry_after)


def _cards_deadline() -> float:
    return CARDS_DEADLINE_FACTOR * float(app_settings.LINK_CARD_TIMEOUT)


def _check_scheduled_quota(user: AbstractBaseUser) -> None:
    """`too_many_scheduled` when the user has `INTEGRATIONS_SCHEDULED_POSTS_PER_USER` posts waiting for their time,
    with the seconds until the next of them goes out."""
    limit = int(app_settings.SCHEDULED_POSTS_PER_USER)
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
    from integrations.bluesky.posts import richtext

    until = time.monotonic() + resolution.MENTIONS_DEADLINE  # for all of them, the channel's PDS included
    found = resolution.lookup_handles(handles, deadline=resolution.MENTIONS_DEADLINE)

    def ask_pds(client: Any, handle: str) -> str | None:
        # The deadline covers the question only: a session refresh `lifecycle.call` may need first is not cut short.
        with outbound.deadline(until - time.monotonic()):
            return client.resolve_handle(handle)

    def resolve_handle(handle: str) -> str | None:
        if isinstance(did := found.get(handle), str):
            return did
        if until - time.monotonic() <= 0:
            return None  # out of time: the mention stays text
        try:
            return lifecycle.call(channel, lambda client, token: ask_pds(client, handle))
        except IntegrationError:
            return None

    return richtext.resolve_mentions(handles, resolve_handle)


# --- scheduled posts ---------------------------------------------------------------------------------------------
def check_schedule(when: datetime) -> None:
    """Refuse a time that has passed or is only a moment away (`scheduled_in_the_past`), or is more than a year
    ahead (`scheduled_too_far`)."""
    now = timezone.now()
    if when <= now + SCHEDULE_MIN_LEAD:
        raise ScheduledInThePast()
    if when > now + SCHEDULE_MAX_AHEAD:
        raise ScheduledTooFar()


def _locked_scheduled(post_id: int, *, held: bool = False) -> Post:
    """The post under its row lock (call inside a transaction), if it is still scheduled and never attempted.

    `held`: the caller holds it for an edit (its lease); otherwise a running lease means a worker has it."""
    post = _locked(post_id)
    if post.status != Post.Status.SCHEDULED or post.attempts:
        raise PostNotScheduled()
    now = timezone.now()
    if not held and post.lease_until and post.lease_until > now:
        raise PostBusy(retry_after=int((post.lease_until - now).total_seconds()) + 1)
    return post


def cancel(post: Post, *, keep: bool = True) -> Post:
    """Cancel a scheduled post that has not started publishing: nothing was sent, so nothing is deleted upstream.

    It stays in its owner's history as `cancelled` (its text kept; its uploads no longer held for it: the clean-up
    removes them once no other post uses them), or with `keep=False` it is deleted altogether. Returns the post as
    stored (unsaved, without a key, when deleted)."""
    post_id = post.pk
    with transaction.atomic():
        post = _locked_scheduled(post_id)
        _cancel_wake_ups(post)  # as they were stored: a wake-up at its time, a retry still waiting
        # Its uploads stay for other posts (`purge_unused_media` removes them once none uses them).
        if keep:
            post.status = Post.Status.CANCELLED
            post.cancelled_at = timezone.now()
            post.lease_until = post.next_attempt_at = None
            post.save(update_fields=["status", "cancelled_at", "lease_until", "next_attempt_at"])
        else:
            post.delete()
    logger.info("scheduled post %s cancelled%s", post_id, "" if keep else " and deleted")
    return post


def reschedule(post: Post, when: datetime) -> Post:
    """Move a scheduled post to another time; its plan is recomputed for it (keys and createdAt).

    A post's plan may be recomputed only while it has never been attempted: nothing of it can be on Bluesky, so
    the new plan cannot publish twice. The row lock makes sure no worker starts it meanwhile.
    """
    check_schedule(when)
    with transaction.atomic():
        post = _locked_scheduled(post.pk)
        _cancel_wake_ups(post)  # the wake-up at the old time
        _replan(post, when)
        post.scheduled_at = when
        post.save(update_fields=["scheduled_at"])
        _wake_at(post)
    return post


def _wake_at(post: Post) -> None:
    """Have a worker look for due posts at this post's time, once the post is committed: the waiting run of
    `publish_due_posts` is brought forward to it when it is the next post due (no task waits for this post alone)."""
    from integrations.tasks import schedule_publishing

    transaction.on_commit(schedule_publishing)


def _cancel_wake_ups(post: Post) -> None:
    """Remove the task runs still waiting for this post (at its scheduled time or its retry time, as stored)."""
    from integrations.tasks import cancel_wake_ups

    cancel_wake_ups(post.pk, [post.scheduled_at, post.next_attempt_at])


def _replan(post: Post, when: datetime) -> None:
    """The same records planned for another time: new keys and createdAt, the thread's replies (and CIDs) anew.
    For the same time (a record that changed, its time not), the keys stay."""
    parts = list(post.parts.order_by("index"))
    if when == (post.scheduled_at or post.created_at) and all(part.rkey for part in parts):
        keys = [part.rkey for part in parts]
    else:
        keys = part_keys(post.pk, when, len(parts), _keys_taken(post.channel, when, besides=post))
    outer = parts[0].record.get("reply") if parts else None  # the post this one replies to: unchanged
    root = parent = None
    for index, (part, key) in enumerate(zip(parts, keys, strict=True)):
        record = dict(part.record)
        record["createdAt"] = iso_time(when + timedelta(milliseconds=index))
        if index:
            record["reply"] = {"root": root, "parent": parent}
        part.rkey, part.record, part.expected_cid = key, record, record_cid(record)
        parent = {"uri": at_uri(post.channel.did, key), "cid": part.expected_cid}
        root = root or (outer["root"] if outer else parent)
    PostPart.objects.bulk_update(parts, ["rkey", "record", "expected_cid"])


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
    meanwhile; its plan is replaced only because it was never attempted (see `reschedule`).
    """
    with transaction.atomic():
        held = _locked_scheduled(post.pk)
        held.lease_until = timezone.now() + LEASE
        held.save(update_fields=["lease_until"])
    try:
        return accept(
            held.user,
            held.channel,
            parts,
            reply_to=reply_to,
            quote=quote,
            default_lang=default_lang,
            scheduled_at=scheduled_at or held.scheduled_at,
            replacing=held,
        )
    except BaseException:
        Post.objects.filter(pk=held.pk, status=Post.Status.SCHEDULED).update(lease_until=None)
        raise


def first_link(facets: Sequence[dict[str, Any]]) -> str | None:
    """The URI of the first link in a part's facets (the full URI, however the text shortens it)."""
    from integrations.bluesky.posts import richtext

    return next((uri for _, _, uri in richtext.link_spans(facets)), None)


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


def _wanted_card(
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


def _built_card(user: AbstractBaseUser, wanted: WantedCard) -> tuple[ExternalCard | None, str]:
    """The card, read from its page now (within the deadline in force, on `user`'s budget), and, when it has none
    (or no thumbnail) though one was expected, why not. A card that cannot be built never stops the post."""
    from integrations.bluesky.posts import linkcards
    from integrations.bluesky.words import mid_sentence

    if not app_settings.LINK_CARDS:  # switched off since the post was accepted
        return None, "No link card: link cards are switched off."
    if outbound.remaining() == 0:
        result = linkcards.CardResult(None, NO_TIME_REASON)
    else:
        result = linkcards.fetch_card(wanted.url, user_id=user.pk)
    fetched = result.card
    if wanted.explicit:
        title = wanted.title if wanted.title is not None else (fetched.title if fetched else "")
        description = wanted.description if wanted.description is not None else (fetched.description if fetched else "")
        reason = mid_sentence(result.reason) if result.reason else "the page has no usable image."
        note = "" if fetched and fetched.thumb else f"No thumbnail: {reason}"
    elif fetched is None:
        return None, f"No link card: {mid_sentence(result.reason)}"[:MAX_CARD_NOTE]
    else:
        title, description, note = fetched.title, fetched.description, ""
    thumb = _thumb_media(user, fetched.thumb) if fetched and fetched.thumb else None
    if fetched and fetched.thumb and thumb is None:
        note = "No thumbnail: your storage for images is full."
    return ExternalCard(uri=wanted.url, title=title, description=description, thumb=thumb), note[:MAX_CARD_NOTE]


def _is_pending(part: PostPart) -> bool:
    return bool(part.card and part.card.get("pending"))


def _build_cards_soon(post: Post) -> None:
    """Have a worker read the post's pending link cards as soon as it can, once the post is committed."""
    from integrations.tasks import build_link_cards

    transaction.on_commit(lambda: build_link_cards.enqueue(post.pk))


def _read_cards(user: AbstractBaseUser, parts: Sequence[PostPart]) -> dict[int, tuple[ExternalCard | None, str]]:
    """Each pending part's card read now (network time: call outside any transaction), by part id."""
    with outbound.deadline(_cards_deadline()):
        return {part.pk: _built_card(user, WantedCard.from_json(part.card)) for part in parts}


def _apply_cards(post: Post, cards: dict[int, tuple[ExternalCard | None, str]], read_for: dict[int, dict]) -> set[int]:
    """Store the cards read for `post`'s parts (under its row lock) and replan it; the ids of the parts that took
    theirs. A part whose pending card changed since it was read (an edit) keeps what it has now."""
    taken: set[int] = set()
    embedded = False
    for part in post.parts.all():
        if part.pk not in cards or part.card != read_for.get(part.pk):
            continue
        external, note = cards[part.pk]
        part.card, part.card_note = _card_json(external), note
        if external is not None:
            part.record = {**part.record, "embed": external.as_record()}
            embedded = True
        part.save(update_fields=["card", "card_note", "record"])
        _link_media([part], post.scheduled_at or post.created_at)  # its thumbnail is kept for it
        taken.add(part.pk)
    if embedded:  # the same keys and times; new CIDs down the thread
        _replan(post, post.scheduled_at or post.created_at)
    return taken


def _discard_thumbs(cards: dict[int, tuple[ExternalCard | None, str]], taken: set[int]) -> None:
    """Remove the thumbnails read for cards no part took, unless a post uses them (a thumbnail is stored once per
    content, so another post may share it)."""
    unused = [card.thumb.media_id for pk, (card, _) in cards.items() if pk not in taken and card and card.thumb]
    for media in Media.objects.filter(pk__in=unused).exclude(parts__isnull=False):
        media.discard()


def build_pending_cards(post_id: int) -> int:
    """Read a scheduled post's pending link cards and replan it with them; how many parts took a card (or the
    reason it has none). Nothing changes unless the post is still scheduled and was never attempted (see
    `reschedule`): a post already on its way keeps its plan, and `publish` settles what is left."""
    post = Post.objects.filter(pk=post_id).select_related("user").first()
    if post is None or post.status != Post.Status.SCHEDULED or post.attempts:
        return 0
    pending = [part for part in post.parts.all() if _is_pending(part)]
    if not pending:
        return 0
    cards = _read_cards(post.user, pending)
    taken: set[int] = set()
    try:
        with transaction.atomic():
            taken = _apply_cards(_locked_scheduled(post_id), cards, {part.pk: part.card for part in pending})
    except (Post.DoesNotExist, PostNotScheduled, PostBusy):
        logger.info("link cards of post %s not applied: it changed meanwhile", post_id)
    _discard_thumbs(cards, taken)
    return len(taken)


def _settle_pending_cards(post: Post, parts: list[PostPart]) -> list[PostPart]:
    """The parts of a post about to be sent, with no card pending: on its first attempt (nothing of it was ever
    sent) the cards are read now and the new plan is stored before anything is written; on a later one a pending
    card is dropped (the plan, planned without it, stays as it is) and the note says why."""
    pending = [part for part in parts if _is_pending(part)]
    first = post.attempts == 1 and not any(part.uri for part in parts)
    cards = _read_cards(post.user, pending) if first else {part.pk: (None, CARD_LATE_NOTE) for part in pending}
    taken: set[int] = set()
    with transaction.atomic():
        locked = Post.objects.select_for_update().get(pk=post.pk)
        if locked.status == Post.Status.PUBLISHING and locked.attempts == post.attempts:  # still this attempt's
            taken = _apply_cards(locked, cards, {part.pk: part.card for part in pending})
    _discard_thumbs(cards, taken)
    return list(post.parts.order_by("index"))


def _thumb_media(user: AbstractBaseUser, prepared: Any) -> PlannedImage | None:
    """Keep a card's thumbnail as an upload of the user's, so it is sent as a blob like an image: once per content
    (every post and part linking the same page shares it). None when the user's storage is full."""
    digest = hashlib.sha256(prepared.data).hexdigest()
    media = Media.objects.filter(owner=user, digest=digest).first()
    if media is None:
        try:
            media = _stored(user, prepared, "thumb", digest)
        except StorageFull:
            return None
    return PlannedImage(
        cid=blob_cid(prepared.data),
        mime=media.mime,
        size=media.size,
        width=media.width,
        height=media.height,
        alt="",
        media_id=media.pk,
    )


def _planned_image(user: AbstractBaseUser, request: ImageRequest, images: Any) -> PlannedImage:
    media = Media.objects.filter(pk=request.media_id, owner=user).first()
    if media is None:
        raise MediaNotFound()
    alt = images.check_alt(request.alt, required=bool(app_settings.POST_ALT_TEXT_REQUIRED))
    with media.file.open("rb") as handle:
        cid = blob_cid(handle.read())
    return PlannedImage(
        cid=cid, mime=media.mime, size=media.size, width=media.width, height=media.height, alt=alt, media_id=media.pk
    )


def store_media(user: AbstractBaseUser, upload: Any, *, first_frame: bool = False) -> Media:
    """Prepare an uploaded image (content sniffed, metadata removed, within the limits) and keep it for its owner.

    An animated image is refused (`animated_image`: its author chooses) unless `first_frame`: then its first frame
    is kept as a still.
    `too_many_uploads` past `INTEGRATIONS_UPLOADS_PER_HOUR` (every upload counts, a refused one too: it cost the
    work), `storage_full` when it would take the owner past `INTEGRATIONS_MEDIA_BYTES_PER_USER`."""
    from integrations.bluesky.posts import images

    retry_after = over_rate("media-upload", str(user.pk), int(app_settings.UPLOADS_PER_HOUR), 3600)
    if retry_after is not None:
        raise TooManyUploads(retry_after=retry_after)
    prepared = images.prepare(upload, first_frame=first_frame)
    return _stored(user, prepared, "image", hashlib.sha256(prepared.data).hexdigest())


def _stored(user: AbstractBaseUser, prepared: Any, name: str, digest: str) -> Media:
    """Store prepared image bytes as the user's, within their storage quota."""
    from django.core.files.base import ContentFile

    quota = int(app_settings.MEDIA_BYTES_PER_USER)
    stored = Media.objects.filter(owner=user).aggregate(total=Sum("size"))["total"] or 0
    if stored + len(prepared.data) > quota:
        raise StorageFull(f"{quota / 1_000_000:,.0f} MB")
    media = Media(
        owner=user,
        mime=prepared.mime,
        width=prepared.width,
        height=prepared.height,
        size=len(prepared.data),
        digest=digest,
    )
    media.file.save(name, ContentFile(prepared.data), save=False)
    media.save()
    return media


# Uploads no post needs are kept this long after they were uploaded or last attached (a client attaches one upload
# to its posts one after the other), then removed.
UNUSED_MEDIA_KEPT = timedelta(days=1)
PURGE_BATCH = 500


# A post in these states needs no upload any more (a cancelled one stays in its owner's history, never to be sent).
FINISHED = (Post.Status.PUBLISHED, Post.Status.CANCELLED)


def media_in_use() -> Exists:
    """Whether a post that is not published yet uses the upload (to use in a filter on `Media`)."""
    links = PostPart.media.through.objects.filter(media_id=OuterRef("pk"))
    return Exists(links.exclude(postpart__post__status__in=FINISHED))


def unused_media(cutoff: datetime) -> "QuerySet[Media]":
    """The uploads whose last use (upload, or the time of the last post attached) is before `cutoff` and that no
    unpublished post uses (a post that is late, waiting or failed still does), oldest first."""
    return Media.objects.filter(used_at__lt=cutoff).filter(~media_in_use()).order_by("used_at")


def purge_unused_media(older_than: timedelta = UNUSED_MEDIA_KEPT) -> int:
    """Delete the uploads that no unpublished post uses and that were not uploaded or attached within `older_than`;
    return how many.

    Only the stale uploads are looked at (`Media.used_at`, indexed; a scheduled post moves it to its time), each
    checked through its links (`PostPart.media`) to the posts using it: the cost follows the uploads removed, not
    the posts stored. The rows
    are deleted under their row locks (a post attaching one meanwhile waits, then finds it gone: `media_not_found`),
    and their files after the commit (a file that cannot be deleted is left behind, never a row without its file).
    """
    cutoff = timezone.now() - older_than
    storage = Media._meta.get_field("file").storage
    removed = 0
    while True:
        with transaction.atomic():
            batch = list(unused_media(cutoff).select_for_update().values_list("pk", "file")[:PURGE_BATCH])
            if batch:
                Media.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
        for _, name in batch:
            try:
                storage.delete(name)
            except OSError:
                logger.warning("could not delete the file of a removed upload: %s", name, exc_info=True)
        removed += len(batch)
        if len(batch) < PURGE_BATCH:
            return removed
