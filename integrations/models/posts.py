"""Posts, their parts and their uploaded media, with the post's named state transitions."""

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.models.channels import Channel


def _media_path(instance: "Media", filename: str) -> str:
    # Random, not guessable, and never the uploader's file name (which may say more than the picture).
    return f"integrations/media/{instance.owner_id}/{uuid.uuid4().hex}"


class Media(models.Model):
    """An image a user uploaded for a post (or a link card's thumbnail), already prepared for sending (metadata
    removed, within the limits).

    Kept with the storage API (`MEDIA_ROOT` by default), private to its owner (it is served only through the app's
    own views and API, never from a public URL). One upload may go into several posts (one per channel, say): it
    lives as long as a post that is not published yet uses it (`PostPart.media`), and at least a day after its last
    use (`used_at`: uploaded, or the time of the last post it was attached to), so a client can still attach it to
    its next post; then `media.purge_unused_media` removes it. A thumbnail is stored once per owner and content
    (`digest`).
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    file = models.FileField(upload_to=_media_path, max_length=300)
    mime = models.CharField(max_length=50)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    digest = models.CharField(max_length=64, blank=True, default="")  # sha-256 of the bytes sent, in hex
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Its last use: uploaded, or the time of the latest post it was attached to (a scheduled one's is ahead).
    used_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "media"
        indexes = [models.Index(fields=["owner", "digest"], name="integrations_media_digest")]

    def __str__(self) -> str:
        return f"{self.mime} {self.width}x{self.height}"

    def discard(self) -> None:
        """Delete the stored file, then the row (the other way round, a failed file delete would leave a file that
        nothing points to any more)."""
        self.file.delete(save=False)
        self.delete()


def post_due_at() -> Case:
    """When a post is next due: a scheduled post at its time, a waiting one at its retry time, one being published
    when its worker's lease runs out (the worker died); a published or failed post never (NULL)."""
    return Case(
        When(status="scheduled", then=F("scheduled_at")),
        When(status="waiting", then=F("next_attempt_at")),
        When(status="publishing", then=F("lease_until")),
        output_field=models.DateTimeField(),
    )


def post_history_at() -> Coalesce:
    """Where a post sits in its owner's history (`/app/posts`, newest first): when it went out, was cancelled or was
    due, else, for a post never scheduled that has not gone out, when it was written. Never NULL (every post has a
    `created_at`), so it can order keyset pages."""
    return Coalesce("published_at", "cancelled_at", "scheduled_at", "created_at")


class Post(models.Model):
    """Something a user publishes on a channel: one part, or several published as a thread in their order.

    When a post is accepted its plan is fixed (`PostPart.rkey` and `PostPart.record`): every attempt sends that
    same plan, so a retry can never publish twice.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        PUBLISHING = "publishing", "Publishing"
        WAITING = "waiting", "Waiting to retry"
        PUBLISHED = "published", "Published"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # Its owner deleted it while an attempt was running (or its records could not all be deleted yet): no attempt
        # starts any more, and whoever holds it deletes every record that landed, then the post.
        DELETING = "deleting", "Being deleted"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="integration_posts")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="posts")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PUBLISHING, db_index=True)
    reply_to_uri = models.CharField(max_length=500, blank=True)
    quote_uri = models.CharField(max_length=500, blank=True)
    # When it was written (an edit of a scheduled post keeps it), when it is due, when it went out, and when a
    # scheduled post was cancelled (it stays in its owner's history).
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # When a scheduled post is due (UTC); it waits as `scheduled` until then and can be changed until it starts.
    scheduled_at = models.DateTimeField(null=True, blank=True, db_index=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # While a worker publishes, no other may start (a dead worker's lease runs out; its successor reconciles).
    lease_until = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # A user's posts, newest first, a page at a time.
            models.Index(fields=["user", "created_at", "id"], name="integrations_post_user_created"),
            # The admin's posts of one status, newest first (a rare status would otherwise walk every post's date).
            models.Index(fields=["status", "created_at", "id"], name="integrations_post_status_new"),
            # A user's scheduled posts, soonest first.
            models.Index(
                fields=["user", "scheduled_at", "id"],
                condition=Q(status="scheduled"),
                name="integrations_post_user_sched",
            ),
            # Claiming due posts in the order they fell due (`posting.due.claim_due`): finished posts have no due time,
            # so the range `due_at <= now` holds only the few that may be due. Not a partial index: PostgreSQL keeps
            # no statistics of a partial index's expression, and without them it misjudged how few posts are due.
            models.Index(post_due_at(), "id", name="integrations_post_due"),
            # A user's history (every post but the scheduled ones) in its order, a page at a time: the page's
            # `WHERE user_id = … AND NOT status = 'scheduled' AND history_at <= …` enters it at the cursor.
            models.Index(
                F("user"),
                post_history_at(),
                F("id"),
                condition=~Q(status="scheduled"),
                name="integrations_post_user_history",
            ),
        ]

    # The parts as they were just planned, on a post `store` returns (saves its first attempt a read).
    planned_parts: list["PostPart"] | None = None

    def __str__(self) -> str:
        return f"post {self.pk} on {self.channel}"

    # --- transitions: each sets its fields and saves exactly those -----------------------------------------------
    def start_attempt(self, lease_until: datetime) -> None:
        """Take the post for one more attempt, held by this worker's lease until `lease_until` (call under its row
        lock)."""
        self.status = self.Status.PUBLISHING
        self.lease_until = lease_until
        self.attempts += 1
        self.next_attempt_at = None
        self.save(update_fields=["status", "lease_until", "attempts", "next_attempt_at"])

    def mark_published(self) -> bool:
        """Every part is on the channel: published now, lease released, no error. False (nothing saved) when its
        owner marked it for deletion meanwhile."""
        self.status = self.Status.PUBLISHED
        self.published_at = timezone.now()
        self.lease_until = None
        self.error_code = self.error_message = ""
        return self._store_unless_deleting(["status", "published_at", "lease_until", "error_code", "error_message"])

    def mark_waiting(self, until: datetime, error_code: str, message: str) -> bool:
        """The attempt failed for now: the next one is due at `until`, lease released, the reason kept. False
        (nothing saved) when its owner marked it for deletion meanwhile."""
        self.lease_until = None
        self.error_code, self.error_message = error_code, message
        self.status = self.Status.WAITING
        self.next_attempt_at = until
        return self._store_unless_deleting(["status", "lease_until", "error_code", "error_message", "next_attempt_at"])

    def mark_blocked(self, until: datetime, error_code: str, message: str) -> bool:
        """Nothing could be sent (the channel or the integration cannot publish): it waits until `until` with the
        reason, and the attempt does not count. False (nothing saved) when its owner marked it for deletion."""
        self.attempts = max(self.attempts - 1, 0)
        self.lease_until = None
        self.status = self.Status.WAITING
        self.next_attempt_at = until
        self.error_code, self.error_message = error_code, message
        fields = ["attempts", "status", "lease_until", "error_code", "error_message", "next_attempt_at"]
        return self._store_unless_deleting(fields)

    def mark_failed(self, error_code: str, message: str) -> bool:
        """Failed for good with the reason (a retry is its owner's decision), lease released, no retry waiting.
        False (nothing saved) when its owner marked it for deletion meanwhile."""
        self.lease_until = self.next_attempt_at = None
        self.status = self.Status.FAILED
        self.error_code, self.error_message = error_code, message
        return self._store_unless_deleting(["status", "lease_until", "error_code", "error_message", "next_attempt_at"])

    def mark_deleting(self, lease_until: datetime | None = None) -> None:
        """Its owner deleted it (call under its row lock): no attempt starts any more. `lease_until`: the deleter
        takes the lease (no attempt holds it); otherwise the running attempt keeps its own."""
        self.status = self.Status.DELETING
        if lease_until is not None:
            self.lease_until = lease_until
        self.save(update_fields=["status", "lease_until"])

    def mark_deletion_failed(self, error_code: str, message: str) -> None:
        """Its records could not all be deleted from the channel yet: it stays being deleted, with the reason and no
        lease, and its owner's next delete finishes it."""
        Post.objects.filter(pk=self.pk).update(
            status=self.Status.DELETING, lease_until=None, error_code=error_code, error_message=message
        )
        self.status = self.Status.DELETING
        self.error_code, self.error_message, self.lease_until = error_code, message, None

    def mark_cancelled(self) -> None:
        """A scheduled post that never started is cancelled: it stays in its owner's history, never to be sent."""
        self.status = self.Status.CANCELLED
        self.cancelled_at = timezone.now()
        self.lease_until = self.next_attempt_at = None
        self.save(update_fields=["status", "cancelled_at", "lease_until", "next_attempt_at"])

    def hold(self, until: datetime) -> None:
        """Hold a scheduled post for an edit until `until` (call under its row lock): no worker starts it meanwhile."""
        self.lease_until = until
        self.save(update_fields=["lease_until"])

    def release_hold(self) -> None:
        """Let go of a scheduled post held for an edit that did not go through (if it is still scheduled)."""
        Post.objects.filter(pk=self.pk, status=self.Status.SCHEDULED).update(lease_until=None)

    def _store_unless_deleting(self, fields: list[str]) -> bool:
        """Save `fields` unless the post was marked for deletion meanwhile (then nothing is saved: False)."""
        updated = (
            Post.objects.filter(pk=self.pk)
            .exclude(status=self.Status.DELETING)
            .update(**{name: getattr(self, name) for name in fields})
        )
        return bool(updated)


class PostPart(models.Model):
    """One record of a post: its text as written, and the exact record planned for it (key and content)."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="parts")
    index = models.PositiveSmallIntegerField()
    text = models.TextField()
    langs = models.JSONField(default=list)
    images = models.JSONField(default=list)  # [{"media": id, "alt": "..."}] as the user gave them
    # The link card planned for this part: {"uri", "title", "description", "media": the thumbnail's id or None}.
    card = models.JSONField(null=True, blank=True, default=None)
    # Why the part has no link card (or no thumbnail) although it has a link, in the author's words.
    card_note = models.CharField(max_length=300, blank=True, default="")
    # The uploads the part's record needs as blobs (its images and its card's thumbnail): what keeps them stored.
    media = models.ManyToManyField(Media, related_name="parts", blank=True)
    rkey = models.CharField(max_length=20)
    record = models.JSONField()
    expected_cid = models.CharField(max_length=100)
    uri = models.CharField(max_length=500, blank=True)
    cid = models.CharField(max_length=100, blank=True)

    class Meta:
        # By the column, not by "post": that would order by the post's own ordering, a join on every parts query.
        ordering = ["post_id", "index"]
        constraints = [models.UniqueConstraint(fields=["post", "index"], name="integrations_postpart_unique_index")]
        indexes = [
            # Which records of a channel's feed were published here (`feed.channel_feed`).
            models.Index(fields=["uri"], name="integrations_postpart_uri"),
        ]

    def __str__(self) -> str:
        return f"part {self.index} of post {self.post_id}"
