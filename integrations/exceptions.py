"""The app's own error hierarchy: every failure a user or the API is told about is an `IntegrationError`.

`code` is stable (the API's error code and the key of the adapter's word tables), `temporary` faults keep sessions
and are retried, `retry_after` says when. Providers subclass it for what can go wrong upstream
(`integrations.bluesky.xrpc.errors`); the generic refusals live here. Nothing here ever carries a token or a password.
"""


class IntegrationError(Exception):
    """Base class of the app's errors."""

    code = "integration_error"
    temporary = False
    url: str | None = None  # the base URL of the server a failed call went to (set by a provider's client)

    def __init__(
        self,
        detail: str = "",
        *,
        status_code: int | None = None,
        upstream_error: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.status_code = status_code
        self.upstream_error = upstream_error
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status_code}, upstream={self.upstream_error!r})"

    def placeholders(self) -> dict[str, str]:
        """Values an error adds to the placeholders of its words (beyond {service_url}, {detail}, …)."""
        return {}


class IntegrationDisabled(IntegrationError):
    """The administrator has switched the integration off."""

    code = "integration_disabled"


class ConnectThrottled(IntegrationError):
    """Too many connect attempts: the app's own limit, below the provider's."""

    code = "throttled"
    temporary = True


class PostsThrottled(IntegrationError):
    """Too many posts from one user in a short time (web and API together): each may make the server read pages."""

    code = "posts_throttled"
    temporary = True


class ServiceMisconfigured(IntegrationError):
    """The configured server URL is not usable."""

    code = "service_misconfigured"


class NoSession(IntegrationError):
    """The channel holds no session (disconnected or needs reconnection)."""

    code = "no_session"


class SessionUnreadable(IntegrationError):
    """The stored session cannot be decrypted with any configured key (its key was dropped): reconnect."""

    code = "session_unreadable"


class ChannelConnected(IntegrationError):
    """The channel still holds a session: disconnect it before removing it."""

    code = "channel_connected"


# --- Publishing -------------------------------------------------------------------------------------------------------
class ChannelNotReady(IntegrationError):
    """The channel cannot publish now (disconnected, needs reconnection, account deactivated or suspended)."""

    code = "channel_not_ready"


class TooManyParts(IntegrationError):
    code = "too_many_parts"


class EmptyPost(IntegrationError):
    code = "empty_post"


class MediaNotFound(IntegrationError):
    """An image id that is not one of the user's uploads (or was already used by a published post)."""

    code = "media_not_found"


class TooManyUploads(IntegrationError):
    """The user uploaded `INTEGRATIONS_UPLOADS_PER_HOUR` images within the hour."""

    code = "too_many_uploads"
    temporary = True


class StorageFull(IntegrationError):
    """The user's stored images would take more than `INTEGRATIONS_MEDIA_BYTES_PER_USER`."""

    code = "storage_full"


class TooManyScheduled(IntegrationError):
    """The user has `INTEGRATIONS_SCHEDULED_POSTS_PER_USER` posts scheduled already."""

    code = "too_many_scheduled"
    temporary = True


class PostBusy(IntegrationError):
    """Another worker is publishing this post right now."""

    code = "post_busy"
    temporary = True


class PostGone(IntegrationError):
    """The post was deleted meanwhile."""

    code = "post_gone"


class PostDeleting(IntegrationError):
    """The post is being deleted: an attempt that was running deletes it (from Bluesky too) as soon as it ends."""

    code = "post_deleting"
    temporary = True


class PostNotRetryable(IntegrationError):
    """Only a failed or waiting post can be published again."""

    code = "post_not_retryable"


class ScheduledInThePast(IntegrationError):
    """A scheduled time that is already past (or only a moment away)."""

    code = "scheduled_in_the_past"


class ScheduledTooFar(IntegrationError):
    """A scheduled time more than a year ahead."""

    code = "scheduled_too_far"


class PostNotScheduled(IntegrationError):
    """Only a scheduled post that has not started publishing can be changed or cancelled."""

    code = "post_not_scheduled"


class ScheduleMissed(IntegrationError):
    """A scheduled post could not go out within `INTEGRATIONS_SCHEDULE_MISSED_AFTER` of its time: its owner decides."""

    code = "missed"


class InvalidCursor(IntegrationError):
    """A page cursor that is not one the server could have given (wrong characters or too long)."""

    code = "invalid_cursor"
