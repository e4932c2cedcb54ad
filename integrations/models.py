"""Stored state: integration options, connected channels (with encrypted sessions) and their event log."""

import logging
import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import models, transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Cast, Coalesce
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from integrations import options
from integrations.security import crypto
from integrations.security.fields import EncryptedTextField

logger = logging.getLogger(__name__)


class IntegrationOption(models.Model):
    """One stored option value; an empty value means "not overridden" (env or default applies)."""

    key = models.CharField(max_length=100, unique=True)
    value = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "API integration setting"
        verbose_name_plural = "API integration settings"
        permissions = [("manage_integrations", "Can manage API integration settings")]

    def __str__(self) -> str:
        return self.key


# Who may see and change the integration settings (declared on IntegrationOption above).
MANAGE_PERMISSION = "integrations.manage_integrations"


@receiver([post_save, post_delete], sender=IntegrationOption)
def _invalidate_option_cache(**kwargs: object) -> None:
    options.invalidate()
    # Again after commit: a reader in another process may have re-cached the old value meanwhile.
    transaction.on_commit(options.invalidate)


class ChannelQuerySet(models.QuerySet):
    def without_tokens(self) -> "ChannelQuerySet":
        """Channels for pages and lists that show no token: nothing is decrypted.

        The refresh token's raw ciphertext is still selected (as `refresh_cipher`, a plain text cast that skips the
        field's decryption) so that `session_unreadable` can tell, by its HMAC alone, whether a configured key made it.
        """
        return self.defer("access_jwt", "refresh_jwt").annotate(
            refresh_cipher=Cast("refresh_jwt", output_field=models.TextField())
        )


def last_refreshed() -> Coalesce:
    """When a channel's session was last rotated (its connection, before the first refresh)."""
    return Coalesce("refreshed_at", "connected_at")


# The channel states keep-alive refreshes (the others wait for their owner).
KEEPALIVE_STATUSES = ("active", "degraded", "deactivated")
KEEPALIVE_STATES = Q(status__in=KEEPALIVE_STATUSES)

# The columns a change of a channel's state writes when nothing else on the row changed.
CHANNEL_STATE_FIELDS = ["status", "last_error_code", "next_retry_at", "updated_at"]


class EventNote(NamedTuple):
    """An event a channel transition records before its own one: what caused it."""

    kind: str
    error_code: str = ""
    detail: str = ""


class Channel(models.Model):
    """A social account a user has connected; for Bluesky, an app-password session on a PDS."""

    class Provider(models.TextChoices):
        BLUESKY = "bluesky", "Bluesky"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEGRADED = "degraded", "Temporarily unreachable"
        NEEDS_RECONNECTION = "needs_reconnection", "Needs reconnection"
        DEACTIVATED = "deactivated", "Account deactivated"
        SUSPENDED = "suspended", "Account suspended"
        DISCONNECTED = "disconnected", "Disconnected"

    class ProfileStatus(models.TextChoices):
        PENDING = "pending", "Not fetched yet"
        OK = "ok", "Fetched"
        UNAVAILABLE = "unavailable", "Unavailable"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channels")
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.BLUESKY)
    did = models.CharField("DID", max_length=255)
    handle = models.CharField(max_length=255)
    # Whether the DID document names the handle and the handle resolves back to the DID (None: not checked yet, or
    # the identity could not be resolved); a handle that is not verified is shown as such, as Bluesky does.
    handle_verified = models.BooleanField(null=True, blank=True)
    service_url = models.URLField("service URL", max_length=500)
    pds_endpoint = models.URLField("PDS endpoint", max_length=500, blank=True)

    access_jwt = EncryptedTextField(blank=True, default="")
    refresh_jwt = EncryptedTextField(blank=True, default="")
    access_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=100, blank=True)
    # Bumped every time tokens are stored: lets a caller that waited on the row lock see a refresh happened.
    session_generation = models.PositiveIntegerField(default=0)

    display_name = models.CharField(max_length=640, blank=True)
    description = models.TextField(blank=True)
    avatar_url = models.URLField(max_length=1000, blank=True)
    profile_status = models.CharField(max_length=20, choices=ProfileStatus.choices, default=ProfileStatus.PENDING)
    profile_fetched_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=30, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    last_error_code = models.CharField(max_length=50, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # The problem state the owner was last told about on the channel page (so each problem is told once).
    owner_told_status = models.CharField(max_length=30, blank=True)
    connected_at = models.DateTimeField(default=timezone.now)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["handle", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["user", "provider", "did"], name="integrations_channel_unique_account")
        ]
        indexes = [
            # A user's channels in their order (pages, API, composer), a page at a time.
            models.Index(fields=["user", "handle", "id"], name="integrations_channel_user_hnd"),
            # The admin's changelist order.
            models.Index(fields=["handle", "id"], name="integrations_channel_handle"),
            # The admin's search by the start of a handle or a DID (`LIKE 'x%'` needs a pattern index on
            # PostgreSQL; other databases ignore the operator class).
            models.Index(fields=["handle"], opclasses=["varchar_pattern_ops"], name="integrations_channel_hnd_like"),
            models.Index(fields=["did"], opclasses=["varchar_pattern_ops"], name="integrations_channel_did_like"),
            # Keep-alive: sessions that end soon, and sessions not refreshed for a while (`channels_due`).
            models.Index(
                fields=["refresh_expires_at"], condition=KEEPALIVE_STATES, name="integrations_channel_ka_ends"
            ),
            models.Index(last_refreshed(), condition=KEEPALIVE_STATES, name="integrations_channel_ka_stale"),
        ]

    def __str__(self) -> str:
        return f"@{self.handle}"

    def get_absolute_url(self) -> str:
        return reverse("integrations:channel-detail", args=[self.pk])

    @property
    def has_session(self) -> bool:
        return bool(self.refresh_jwt)

    @property
    def session_unreadable(self) -> bool:
        """True when a session is stored but no configured encryption key decrypts it (its key was dropped).

        Such a session reads as empty; only a reconnection (or putting the old key back) brings the channel back.
        """
        if "refresh_jwt" in self.__dict__:  # loaded or assigned: the value knows
            return not getattr(self.refresh_jwt, "readable", True)
        cipher = getattr(self, "refresh_cipher", None)
        if cipher is not None:  # deferred by `without_tokens()`: judge the raw ciphertext without decrypting it
            return bool(cipher) and crypto.key_index(cipher) is None
        return not getattr(self.refresh_jwt, "readable", True)  # deferred without the cipher: load it

    @property
    def pds_url(self) -> str:
        """Where the channel's authenticated calls go: its own PDS (from the DID document), else the service URL."""
        return self.pds_endpoint or self.service_url

    def wipe_session(self) -> None:
        """Forget the tokens (not saved); the generation moves on so a waiting refresher sees it happened."""
        self.access_jwt = ""
        self.refresh_jwt = ""
        self.access_expires_at = None
        self.session_generation += 1

    def record_event(self, kind: str, *, detail: str = "", error_code: str = "") -> "ChannelEvent":
        """Append to the channel's event log and log a line (DID, handle, expiries; never a token)."""
        logger.info(
            "channel event %s did=%s handle=%s access_expires=%s refresh_expires=%s%s",
            kind,
            self.did,
            self.handle,
            self.access_expires_at.isoformat() if self.access_expires_at else "-",
            self.refresh_expires_at.isoformat() if self.refresh_expires_at else "-",
            f" error={error_code}" if error_code else "",
        )
        return ChannelEvent.objects.create(channel=self, kind=kind, detail=detail[:500], error_code=error_code)

    def access_expires_within(self, margin: timedelta, now: datetime | None = None) -> bool:
        """Whether the access token is missing or ends within `margin`."""
        if not self.access_jwt or self.access_expires_at is None:
            return True
        return self.access_expires_at <= (now or timezone.now()) + margin

    # Transitions: each sets the state, saves (only the state columns, unless `save_all` says the caller changed more
    # on the row, such as wiped tokens or a followed handle) and records its event.

    def _enter(self, status: str, error_code: str, next_retry_at: datetime | None, *, save_all: bool) -> None:
        self.status, self.last_error_code, self.next_retry_at = status, error_code, next_retry_at
        if save_all:
            self.save()
        else:
            self.save(update_fields=CHANNEL_STATE_FIELDS)

    def mark_needs_reconnection(
        self, error_code: str, *, detail: str = "", save_all: bool = False, cause: EventNote | None = None
    ) -> None:
        """Only a new sign-in by the owner brings the channel back; `cause` is recorded first when given."""
        self._enter(self.Status.NEEDS_RECONNECTION, error_code, None, save_all=save_all)
        if cause is not None:
            self.record_event(cause.kind, error_code=cause.error_code, detail=cause.detail)
        self.record_event(ChannelEvent.Kind.NEEDS_RECONNECTION, error_code=error_code, detail=detail)

    def mark_account_refused(self, status: str, error_code: str, *, event_kind: str, save_all: bool = False) -> None:
        """The account's server refused it as deactivated or suspended (`status`); recorded as `event_kind`."""
        if status not in (self.Status.DEACTIVATED, self.Status.SUSPENDED):
            raise ValueError(f"not a refused account's state: {status}")
        self._enter(status, error_code, None, save_all=save_all)
        self.record_event(event_kind, error_code=error_code)

    def mark_degraded(self, error_code: str, retry_at: datetime, *, detail: str) -> None:
        """A refresh failed for now: the tokens stay as they are and the next attempt waits until `retry_at`."""
        self._enter(self.Status.DEGRADED, error_code, retry_at, save_all=False)
        self.record_event(ChannelEvent.Kind.REFRESH_FAILED, error_code=error_code, detail=detail)

    def take_session_state(self, status: str) -> None:
        """A fresh session is in force (not saved: the caller saves it with the tokens): the account's state as its
        server gave it, no error, no retry time, and no problem told to the owner yet."""
        self.status, self.last_error_code, self.next_retry_at = status, "", None
        self.owner_told_status = ""

    def mark_refreshed(self, now: datetime, *, detail: str = "") -> None:
        """Save the session a refresh stored on the row (`take_session_state`) and record it."""
        self.refreshed_at = now
        self.save()
        self.record_event(ChannelEvent.Kind.REFRESHED, detail=detail)

    def mark_connected(self, *, detail: str = "") -> None:
        """Save the session a sign-in stored on the row (`take_session_state`) and record it."""
        self.connected_at = timezone.now()
        self.refreshed_at = None
        self.save()
        self.record_event(ChannelEvent.Kind.CONNECTED, detail=detail)

    def mark_disconnected(self) -> None:
        """Forget the session and save. The DISCONNECTED event is the caller's to record once it knows whether the
        server signed the session out (after the transaction: that call is network time)."""
        self.wipe_session()
        self.refresh_expires_at = None
        self.status = self.Status.DISCONNECTED
        self.next_retry_at = None
        self.save()

    def mark_profile_unavailable(self) -> None:
        """The profile could not be fetched or stored: say so on the row (this column only)."""
        Channel.objects.filter(pk=self.pk).update(profile_status=self.ProfileStatus.UNAVAILABLE)
        self.profile_status = self.ProfileStatus.UNAVAILABLE

    def store_profile(self, display_name: str, description: str, avatar_url: str) -> None:
        """Write a fetched profile (these columns only). Raises DatabaseError when the database refuses a value; the
        savepoint keeps the caller's transaction usable."""
        self.display_name, self.description, self.avatar_url = display_name, description, avatar_url
        self.profile_status = self.ProfileStatus.OK
        self.profile_fetched_at = timezone.now()
        with transaction.atomic():
            Channel.objects.filter(pk=self.pk).update(
                display_name=self.display_name,
                description=self.description,
                avatar_url=self.avatar_url,
                profile_status=self.profile_status,
                profile_fetched_at=self.profile_fetched_at,
            )


class ChannelEvent(models.Model):
    """What happened to a channel, for its owner and the admin. Never holds a token."""

    class Kind(models.TextChoices):
        CONNECTED = "connected", "Connected"
        REFRESHED = "refreshed", "Session refreshed"
        REFRESH_FAILED = "refresh_failed", "Refresh failed"
        NEEDS_RECONNECTION = "needs_reconnection", "Needs reconnection"
        PROFILE_UPDATED = "profile_updated", "Profile updated"
        DISCONNECTED = "disconnected", "Disconnected"
        CONNECT_REFUSED = "connect_refused", "Connection refused"
        IDENTITY_CHANGED = "identity_changed", "Handle or server changed"
        CALL_REFUSED = "call_refused", "Refused by the account's server"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    detail = models.CharField(max_length=500, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # A channel's latest events, a page at a time.
            models.Index(fields=["channel", "created_at", "id"], name="integrations_event_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M}"


class RateCounter(models.Model):
    """How many hits one limit counted for one client in one fixed window (`integrations.security.throttling`). In the
    database, where other users' traffic cannot evict it as it can evict a cache entry."""

    key = models.CharField(max_length=255, unique=True)  # scope:ident:window start
    count = models.PositiveBigIntegerField(default=0)  # hits, or units such as bytes
    ends_at = models.BigIntegerField(db_index=True)  # the window's end, in seconds since the epoch

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


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
