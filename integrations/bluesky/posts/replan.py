"""Record keys for a post's plan, chosen under a lock on the repository, and a plan moved to another time."""

import hashlib
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q

from integrations.bluesky.posts.plans import at_uri, iso_time, part_keys, record_cid
from integrations.models import Channel, Post, PostPart

# Keys another post could share with one planned for a moment lie this close to it (`plans.part_keys`: a post's keys
# are its moment plus its part's index in microseconds, moved on by its length per 1,024 posts at one moment).
KEY_NEIGHBOURHOOD = timedelta(milliseconds=100)


def keys_taken(channel: Channel, moment: datetime, *, besides: Post | None = None) -> set[str]:
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


def replan(post: Post, when: datetime) -> None:
    """The same records planned for another time: new keys and createdAt, the thread's replies (and CIDs) anew.
    For the same time (a record that changed, its time not), the keys stay.

    A post's plan may be recomputed only while it has never been attempted: nothing of it can be on Bluesky, so
    the new plan cannot publish twice."""
    parts = list(post.parts.order_by("index"))
    if when == (post.scheduled_at or post.created_at) and all(part.rkey for part in parts):
        keys = [part.rkey for part in parts]
    else:
        keys = part_keys(post.pk, when, len(parts), keys_taken(post.channel, when, besides=post))
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
