"""The one place that turns an error into the words a user reads and the HTTP status the API answers.

Providers register their words (`register_words`, e.g. `integrations.bluesky.words`). Projects change them:
subclass `IntegrationsAdapter`, fill `messages` / `health_texts` (or override `describe`) and name the class in
the setting `INTEGRATIONS_ADAPTER`.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from integrations.clock import shown
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError


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


# What providers register (see `register_words`); an adapter's own tables take precedence.
_MESSAGES: dict[str, tuple[int, str]] = {
    "integration_disabled": (
        403,
        _("Your administrator has switched this integration off for now. Try again later or ask your administrator."),
    ),
    "throttled": (429, _("Too many attempts in a short time. Try again in {retry}.")),
    "posts_throttled": (429, _("You have sent many posts in a short time. Try again in {retry}.")),
    "no_session": (409, _("This channel is not connected. Reconnect it first.")),
    "session_unreadable": (409, _("This server can no longer read the channel's stored session. Reconnect it.")),
    "service_misconfigured": (503, _("The server configured for this site is invalid ({detail}).")),
    "channel_connected": (409, _("Disconnect the channel before removing it.")),
    "channel_not_ready": (409, _("This channel cannot publish right now: {detail}")),
    "too_many_parts": (400, _("A thread has at most {detail} parts.")),
    "empty_post": (400, _("Write something or add an image.")),
    "media_not_found": (400, _("That image is not one of your uploads (or it was already published).")),
    "too_many_uploads": (429, _("You uploaded the most images allowed in an hour. Try again in {retry}.")),
    "storage_full": (
        413,
        _(
            "Your stored images would take more than the {detail} allowed. An image is removed a day after the last "
            "post using it is published or deleted: try again then, or remove images you no longer need."
        ),
    ),
    "too_many_scheduled": (
        429,
        _(
            "You have {detail} posts scheduled, the most allowed. Cancel one, or schedule this one once the next "
            "has gone out (in {retry})."
        ),
    ),
    "post_busy": (409, _("This post is being published right now. Try again in {retry}.")),
    "post_not_retryable": (409, _("Only a failed or waiting post can be published again.")),
    "post_gone": (404, _("This post has been deleted.")),
    "post_deleting": (
        409,
        _(
            "This post was being published when you deleted it: it is deleted, from Bluesky too, as soon as that "
            "attempt ends (in {retry} at most)."
        ),
    ),
    "scheduled_in_the_past": (400, _("That time has already passed (or is only seconds away). Choose a later time.")),
    "scheduled_too_far": (400, _("A post can be scheduled up to a year ahead. Choose an earlier time.")),
    "post_not_scheduled": (
        409,
        _("Only a scheduled post that has not started publishing can be changed or cancelled."),
    ),
    "missed": (
        409,
        _("Not published: it was due at {detail} and could not go out in time. Publish it now or delete it."),
    ),
    "invalid_cursor": (400, _("That page link is not valid. Start again from the first page.")),
}
_HEALTH_TEXTS: dict[str, tuple[str, str]] = {}
_CONTEXT: dict[str, str] = {}
_HINTS: dict[str, tuple[str, str]] = {}
_FALLBACK: list[tuple[int, str]] = [(502, _("Something went wrong. Nothing was changed; try again later."))]


def register_words(
    *,
    messages: dict[str, tuple[int, str]] | None = None,
    health_texts: dict[str, tuple[str, str]] | None = None,
    context: dict[str, str] | None = None,
    hints: dict[str, tuple[str, str]] | None = None,
    fallback: tuple[int, str] | None = None,
) -> None:
    """A provider's words: error code -> (HTTP status, template), health state -> (label, advice template),
    values its templates use (e.g. a settings URL), hints appended to a code's message when the server is not
    the provider's default (code -> (hint, default server URL)), and the message for an unknown code."""
    _MESSAGES.update(messages or {})
    _HEALTH_TEXTS.update(health_texts or {})
    _CONTEXT.update(context or {})
    _HINTS.update(hints or {})
    if fallback:
        _FALLBACK[0] = fallback


def registered_codes() -> set[str]:
    """Every error code that has words."""
    return set(_MESSAGES)


class IntegrationsAdapter:
    """Turns errors and health states into words. Projects subclass it and fill `messages` (code -> (HTTP status,
    template)) or `health_texts` (state -> (label, advice)) with what they want to say differently; everything
    else comes from the providers' registered words."""

    messages: dict[str, tuple[int, str]] = {}
    health_texts: dict[str, tuple[str, str]] = {}

    @property
    def fallback(self) -> tuple[int, str]:
        return _FALLBACK[0]

    def problem_email_recipients(self, channel: Any) -> list[str]:
        """Who is e-mailed when a channel newly has a problem: its owner, when the owner has an e-mail address."""
        email = getattr(channel.user, channel.user.get_email_field_name(), "")
        return [email] if email else []

    def absolute_url(self, path: str) -> str:
        """`path` (a site-relative link such as `/app/posts`) behind `INTEGRATIONS_SITE_URL`: how every link in an
        e-mail is written, since a mail reader has no page to be relative to. Unchanged while the setting is empty
        (a system check warns about that in production)."""
        base = str(app_settings.SITE_URL or "").rstrip("/")
        return f"{base}{path}" if base and path.startswith("/") else path

    def channel_url(self, channel: Any) -> str:
        """The link to a channel's page in e-mails: `absolute_url` of its page."""
        return self.absolute_url(channel.get_absolute_url())

    def posts_url(self, post: Any) -> str:
        """The link to a user's posts in e-mails: `absolute_url` of the posts page ("" when it is not routed)."""
        try:
            return self.absolute_url(reverse("integrations:post-list"))
        except NoReverseMatch:
            return ""

    def user_time_zone(self, user: Any) -> str:
        """The IANA time zone a user's profile names ("" when it names none: their browser's is used, else the
        site's). By default a `time_zone` attribute of the user model; override to read your own profile."""
        return str(getattr(user, "time_zone", "") or "")

    def message_for(self, code: str) -> tuple[int, str]:
        """The HTTP status and message template for an error code."""
        return self.messages.get(code) or _MESSAGES.get(code) or self.fallback

    def describe_health(
        self, state: str, *, ends_at: datetime | None = None, retry_at: datetime | None = None, **placeholders: str
    ) -> tuple[str, str]:
        """The label and advice shown for a channel's health state (`placeholders`: the provider's own, such as
        the channel's server)."""
        label, template = self.health_texts.get(state) or _HEALTH_TEXTS.get(state) or (state, "")
        advice = str(template).format(
            ends_at=f"{timezone.localtime(ends_at):%Y-%m-%d}" if ends_at else _("soon"),
            retry_at=f" at {shown(retry_at)}" if retry_at else _(" soon"),
            **{**_CONTEXT, **placeholders},
        )
        return str(label), advice

    def describe(self, error: IntegrationError, *, service_url: str | None = None) -> UserError:
        """The code, message, HTTP status and retry delay for an error.

        The server named is the one the failed call went to (`error.url`, e.g. the account's own PDS), else
        `service_url`.
        """
        service_url = error.url or service_url
        status, template = self.message_for(error.code)
        template = str(template)
        hint = _HINTS.get(error.code)
        if hint and service_url and service_url != hint[1]:
            template += str(hint[0])
        nowhere = str(_("the configured server"))
        message = template.format(
            service_url=service_url or nowhere,
            host=(urlsplit(service_url).hostname or service_url) if service_url else nowhere,
            retry=humanize_seconds(error.retry_after),
            detail=error.detail or error.code,
            **{**_CONTEXT, **error.placeholders()},
        )
        return UserError(code=error.code, message=message, http_status=status, retry_after=error.retry_after)


@cache
def _adapter_class(path: str) -> type[IntegrationsAdapter]:
    return import_string(path)


def get_adapter() -> IntegrationsAdapter:
    """The adapter named by `INTEGRATIONS_ADAPTER` (default: `IntegrationsAdapter`)."""
    return _adapter_class(app_settings.ADAPTER)()


def describe(error: IntegrationError) -> UserError:
    """What to tell the user about an error (message, HTTP status), in the words of the project's adapter: the one
    place views, the API and the admin turn an error into words."""
    return get_adapter().describe(error)
