"""A connected account (`Channel`), its state transitions, and what happened to it (`ChannelEvent`)."""

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Cast, Coalesce
from django.urls import reverse
from django.utils import timezone

from integrations.security import crypto
from integrations.security.fields import EncryptedTextField

logger = logging.getLogger(__name__)


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
