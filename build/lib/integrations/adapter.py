"""The one place that turns an error into the words a user reads and the HTTP status the API answers.

Projects can change the words: subclass `IntegrationsAdapter`, override `messages` (or `describe`) and name the
class in the setting `INTEGRATIONS_ADAPTER`.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

from integrations.bluesky import errors

APP_PASSWORDS_URL = "https://bsky.app/settings/app-passwords"
DEFAULT_SERVICE_URL = "https://bsky.social"


@dataclass(frozen=True)
class UserError:
    code: str
    message: str
    http_status: int
    retry_after: int | None = None


def humanize_seconds(seconds: int | None) -> str:
    """'a minute', '5 minutes', '2 hours' (rounded up; 'a few minutes' when unknown)."""
    if not seconds:
        return "a few minutes"
    if seconds < 60:
        return f"{seconds} seconds" if seconds > 1 else "a second"
    minutes = -(-seconds // 60)
    if minutes < 120:
        return "a minute" if minutes == 1 else f"{minutes} minutes"
    return f"{-(-minutes // 60)} hours"


class IntegrationsAdapter:
    """Message table: code -> (HTTP status, message template). Templates may use {service_url} (the server the
    failed call went to, else the configured one), {host} (its host name), {retry}, {app_passwords_url}, {detail}."""

    messages: dict[str, tuple[int, str]] = {
        "invalid_credentials": (
            400,
            "Bluesky did not accept that handle and app password. Check the handle (or email) and the app "
            "password, and that the app password has not been revoked.",
        ),
        "main_password_refused": (
            400,
            "That looks like your main Bluesky password. For your account's safety we only accept app passwords: "
            "create one at {app_passwords_url} and paste it here. The session it opened was signed out again.",
        ),
        "auth_factor_required": (
            400,
            "Bluesky asked for an email sign-in code, which only happens with your main password. Use an app "
            "password instead (app passwords need no code): create one at {app_passwords_url}.",
        ),
        "integration_disabled": (
            403,
            "Your administrator has switched off Bluesky connections for now. Channels already connected keep "
            "working; try again later or ask your administrator.",
        ),
        "throttled": (
            429,
            "Too many connection attempts in a short time. Try again in {retry}; this pause protects your "
            "Bluesky account from being locked out of signing in.",
        ),
        "rate_limited": (
            429,
            "Bluesky is limiting sign-ins for this account right now. Nothing was changed; try again in {retry}.",
        ),
        "pds_unreachable": (
            503,
            "Could not reach the Bluesky server at {service_url}. Nothing was changed; try again in a few minutes.",
        ),
        "pds_timeout": (
            503,
            "The Bluesky server at {service_url} did not answer in time. Nothing was changed; try again in a few "
            "minutes.",
        ),
        "pds_error": (
            502,
            "The Bluesky server at {service_url} had a problem answering. Nothing was changed; try again in a few "
            "minutes.",
        ),
        "invalid_response": (
            502,
            "The server at {service_url} did not answer like a Bluesky PDS. Nothing was changed; try again later. "
            "If this persists, "
            "ask your administrator to check the Service URL.",
        ),
        "account_deactivated": (
            403,
            "This Bluesky account is deactivated. Reactivate it by signing in on bsky.app, then connect it here again.",
        ),
        "account_suspended": (
            403,
            "This Bluesky account has been suspended or taken down by its server, so it cannot be used. Contact "
            "Bluesky support if you think this is a mistake.",
        ),
        "session_expired": (
            409,
            "Bluesky ended this channel's session (its app password may have been revoked). Reconnect it with a "
            "new app password: create one at {app_passwords_url}.",
        ),
        "session_rejected": (
            409,
            "Bluesky did not accept this channel's session. Reconnect it with a new app password: create one at "
            "{app_passwords_url}.",
        ),
        "temporary_error": (
            503,
            "Bluesky could not be reached just now. Nothing was changed; we try again in {retry}.",
        ),
        "session_unreadable": (
            409,
            "This server can no longer read the channel's stored session (the encryption key it was saved with "
            "has been removed). Reconnect it with an app password: create one at {app_passwords_url}.",
        ),
        "no_session": (409, "This channel is not connected. Reconnect it with an app password first."),
        "service_misconfigured": (
            503,
            "The Bluesky Service URL configured for this site is invalid ({detail}). Ask your administrator to fix it.",
        ),
        "request_rejected": (400, "The Bluesky server refused the request: {detail}"),
        "account_mismatch": (
            502,
            "The Bluesky server at {service_url} answered for a different account than this channel's. Nothing "
            "was changed; if this persists, ask your administrator to check the server.",
        ),
        "address_refused": (
            502,
            "The server {host} is not at a public network address, so it was not called. Nothing was changed. "
            "If it should be reachable, ask your administrator to check the Service URL.",
        ),
        "pds_redirect": (
            502,
            "The server at {service_url} answered with a redirect, which is not followed for Bluesky calls. Nothing "
            "was changed; ask your administrator to set the Service URL to the server's own address.",
        ),
    }
    fallback = (502, "Something went wrong talking to Bluesky. Nothing was changed; try again later.")
    other_pds_hint = (
        " Accounts are checked against {service_url}: if your account lives on another server, ask your "
        "administrator to set that server's URL."
    )

    health_texts: dict[str, tuple[str, str]] = {
        "active": ("Active", ""),
        "expiring": (
            "Expiring soon",
            "The session ends on {ends_at}. Refresh now; if that fails, reconnect with a new app password.",
        ),
        "degraded": (
            "Temporarily unreachable",
            "Bluesky could not be reached to renew the session. Nothing is lost; we retry automatically{retry_at}.",
        ),
        "needs_reconnection": (
            "Needs reconnection",
            "Bluesky ended this session. Create a new app password at {app_passwords_url} and reconnect.",
        ),
        # Shown instead of "needs_reconnection" when the reason is a stored session no configured key decrypts.
        "session_unreadable": (
            "Needs reconnection",
            "This server can no longer read the stored session (the encryption key it was saved with has been "
            "removed). Create a new app password at {app_passwords_url} and reconnect.",
        ),
        "deactivated": (
            "Account deactivated",
            "Reactivate the account by signing in on bsky.app, then refresh this channel.",
        ),
        "suspended": (
            "Account suspended",
            "The account was suspended or taken down by its server. Contact Bluesky support.",
        ),
        "disconnected": ("Disconnected", "Connect it again to publish with it."),
    }

    def describe_health(
        self, state: str, *, ends_at: datetime | None = None, retry_at: datetime | None = None
    ) -> tuple[str, str]:
        """The label and advice shown for a channel's health state."""
        label, template = self.health_texts[state]
        advice = template.format(
            ends_at=f"{ends_at.astimezone(UTC):%Y-%m-%d}" if ends_at else "soon",
            retry_at=f" at {retry_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if retry_at else " soon",
            app_passwords_url=APP_PASSWORDS_URL,
        )
        return label, advice

    def describe(self, error: errors.BlueskyError, *, service_url: str | None = None) -> UserError:
        """The code, message, HTTP status and retry delay for an error.

        The server named is the one the failed call went to (`error.url`, e.g. the account's own PDS), else
        `service_url`.
        """
        service_url = error.url or service_url
        status, template = self.messages.get(error.code, self.fallback)
        if error.code == "invalid_credentials" and service_url and service_url != DEFAULT_SERVICE_URL:
            template += self.other_pds_hint
        message = template.format(
            service_url=service_url or "the configured server",
            host=(urlsplit(service_url).hostname or service_url) if service_url else "the configured server",
            retry=humanize_seconds(error.retry_after),
            app_passwords_url=APP_PASSWORDS_URL,
            detail=error.detail or error.code,
        )
        return UserError(code=error.code, message=message, http_status=status, retry_after=error.retry_after)


@cache
def _adapter_class(path: str) -> type[IntegrationsAdapter]:
    return import_string(path)


def get_adapter() -> IntegrationsAdapter:
    """The adapter named by `INTEGRATIONS_ADAPTER` (default: `IntegrationsAdapter`)."""
    path = getattr(settings, "INTEGRATIONS_ADAPTER", "integrations.adapter.IntegrationsAdapter")
    return _adapter_class(path)()
