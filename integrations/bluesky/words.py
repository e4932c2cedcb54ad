"""Bluesky's words: what users read for each error code and health state, registered with the adapter.

The adapter (`integrations.adapter`) is generic; projects replace any of these by subclassing it (see there).
Templates may use {service_url} (the server the failed call went to), {host} (its host name), {retry},
{app_passwords_url}, {detail}; health advice may use {ends_at}, {retry_at}, {app_passwords_url}, {pds} (the
channel's PDS).
"""

from django.utils.translation import gettext_lazy as _

from integrations import adapter

APP_PASSWORDS_URL = "https://bsky.app/settings/app-passwords"
DEFAULT_SERVICE_URL = "https://bsky.social"

MESSAGES: dict[str, tuple[int, str]] = {
    "invalid_credentials": (
        400,
        _(
            "Bluesky did not accept that handle and app password. Check the handle (or email) and the app "
            "password, and that the app password has not been revoked."
        ),
    ),
    "hosted_elsewhere": (
        400,
        _(
            "@{handle} is hosted on {pds}, but this site signs in through {service_url}. Ask your administrator to "
            "allow accounts on other servers, or to set {pds} as the Service URL."
        ),
    ),
    "account_moved": (
        409,
        _(
            "@{handle} has moved to another server, {pds}: sessions and app passwords of its old server do not "
            "work there. Create an app password for the account on its new server and connect it again."
        ),
    ),
    "main_password_refused": (
        400,
        _(
            "That looks like your main Bluesky password. For your account's safety we only accept app passwords: "
            "create one at {app_passwords_url} and paste it here. The session it opened was signed out again."
        ),
    ),
    "auth_factor_required": (
        400,
        _(
            "Bluesky asked for an email sign-in code, which only happens with your main password. Use an app "
            "password instead (app passwords need no code): create one at {app_passwords_url}."
        ),
    ),
    # One wording wherever the switch shows: the channel pages, the composer, a refused connection, a waiting post.
    "integration_disabled": (
        403,
        _(
            "Your administrator has switched Bluesky off for now. Posts you publish or schedule wait and go out "
            "when it is switched on again; new channels can be connected then."
        ),
    ),
    "throttled": (
        429,
        _(
            "Too many connection attempts in a short time. Try again in {retry}; this pause protects your "
            "Bluesky account from being locked out of signing in."
        ),
    ),
    "rate_limited": (
        429,
        _("Bluesky is limiting sign-ins for this account right now. Nothing was changed; try again in {retry}."),
    ),
    "pds_unreachable": (
        503,
        _("Could not reach the Bluesky server at {service_url}. Nothing was changed; try again in a few minutes."),
    ),
    "pds_timeout": (
        503,
        _(
            "The Bluesky server at {service_url} did not answer in time. Nothing was changed; try again in a few "
            "minutes."
        ),
    ),
    "pds_error": (
        502,
        _(
            "The Bluesky server at {service_url} had a problem answering. Nothing was changed; try again in a few "
            "minutes."
        ),
    ),
    "invalid_response": (
        502,
        _(
            "The server at {service_url} did not answer like a Bluesky PDS. Nothing was changed; try again later. "
            "If this persists, "
            "ask your administrator to check the Service URL."
        ),
    ),
    "account_deactivated": (
        403,
        _("This Bluesky account is deactivated. Reactivate it by signing in on bsky.app, then connect it here again."),
    ),
    "account_suspended": (
        403,
        _(
            "This Bluesky account has been suspended or taken down by its server, so it cannot be used. Contact "
            "Bluesky support if you think this is a mistake."
        ),
    ),
    "session_expired": (
        409,
        _(
            "Bluesky ended this channel's session (its app password may have been revoked). Reconnect it with a "
            "new app password: create one at {app_passwords_url}."
        ),
    ),
    "session_rejected": (
        409,
        _(
            "Bluesky did not accept this channel's session. Reconnect it with a new app password: create one at "
            "{app_passwords_url}."
        ),
    ),
    "temporary_error": (
        503,
        _("Bluesky could not be reached just now. Nothing was changed; we try again in {retry}."),
    ),
    "session_unreadable": (
        409,
        _(
            "This server can no longer read the channel's stored session (the encryption key it was saved with "
            "has been removed). Reconnect it with an app password: create one at {app_passwords_url}."
        ),
    ),
    "no_session": (409, _("This channel is not connected. Reconnect it with an app password first.")),
    "service_misconfigured": (
        503,
        _("The Bluesky Service URL configured for this site is invalid ({detail}). Ask your administrator to fix it."),
    ),
    "request_rejected": (400, _("The Bluesky server refused the request: {detail}")),
    "account_mismatch": (
        502,
        _(
            "The Bluesky server at {service_url} answered for a different account than this channel's. Nothing "
            "was changed; if this persists, ask your administrator to check the server."
        ),
    ),
    "address_refused": (
        502,
        _(
            "The server {host} is not at a public network address, so it was not called. Nothing was changed. "
            "If it should be reachable, ask your administrator to check the Service URL."
        ),
    ),
    "post_too_long": (400, _("{detail} Shorten it, or split it into a thread.")),
    "invalid_language": (400, "{detail}"),
    "invalid_text": (400, "{detail}"),
    "invalid_reference": (
        400,
        _("{detail} Use a post's bsky.app address (https://bsky.app/profile/…/post/…) or its at:// URI."),
    ),
    "record_conflict": (
        409,
        _(
            "Bluesky already holds a different post under this post's address, so it was not published again. "
            "Delete this post here and write it anew."
        ),
    ),
    "channel_not_ready": (
        409,
        _("This channel cannot publish right now: {detail} Reconnect it on its page, then publish again."),
    ),
    "pds_redirect": (
        502,
        _(
            "The server at {service_url} answered with a redirect, which is not followed for Bluesky calls. Nothing "
            "was changed; ask your administrator to set the Service URL to the server's own address."
        ),
    ),
    "unsupported_image": (400, _("This image cannot be posted: {detail}")),
    "image_too_large": (400, _("This image is too large to post: {detail}")),
    "animated_image": (
        400,
        _(
            "This image is animated, and animations cannot be posted yet (video comes later). You can post its "
            "first frame as a still image, or choose another image."
        ),
    ),
    "too_many_images": (400, _("A post can carry at most 4 images.")),
    "alt_text_required": (
        400,
        _("Every image needs alt text: a short description of it for people who cannot see it."),
    ),
    "alt_text_too_long": (400, _("Alt text can be at most 2,000 characters; shorten it.")),
}

OTHER_SERVER_HINT = _(
    " Accounts are checked against {service_url}: if your account lives on another server, ask your "
    "administrator to set that server's URL."
)


HEALTH_TEXTS: dict[str, tuple[str, str]] = {
    "active": (_("Active"), ""),
    "expiring": (
        _("Expiring soon"),
        _("The session ends on {ends_at}. Refresh now; if that fails, reconnect with a new app password."),
    ),
    "degraded": (
        _("Temporarily unreachable"),
        _("Bluesky could not be reached to renew the session. Nothing is lost; we retry automatically{retry_at}."),
    ),
    "needs_reconnection": (
        _("Needs reconnection"),
        _("Bluesky ended this session. Create a new app password at {app_passwords_url} and reconnect."),
    ),
    # Shown instead of "needs_reconnection" when the reason is a stored session no configured key decrypts.
    "session_unreadable": (
        _("Needs reconnection"),
        _(
            "This server can no longer read the stored session (the encryption key it was saved with has been "
            "removed). Create a new app password at {app_passwords_url} and reconnect."
        ),
    ),
    # Shown instead of "needs_reconnection" when the account moved to another server ({pds}).
    "account_moved": (
        _("Needs reconnection"),
        _(
            "This account moved to {pds}; its old server's session cannot be used there. Create an app password "
            "for the account and reconnect."
        ),
    ),
    "deactivated": (
        _("Account deactivated"),
        _("Reactivate the account by signing in on bsky.app, then refresh this channel."),
    ),
    "suspended": (
        _("Account suspended"),
        _("The account was suspended or taken down by its server. Contact Bluesky support."),
    ),
    "disconnected": (_("Disconnected"), _("Connect it again to publish with it.")),
}


def mid_sentence(reason: str) -> str:
    """A reason written as a sentence, to follow "No link card:" and the like: its first letter in lower case,
    unless the first word is an acronym or a name written in capitals (URL, HTTP, DNS)."""
    first = reason.split(" ", 1)[0]
    if not reason or not first[:1].isupper() or (len(first) > 1 and first[1:2].isupper()):
        return reason
    return reason[0].lower() + reason[1:]


adapter.register_words(
    messages=MESSAGES,
    health_texts=HEALTH_TEXTS,
    context={"app_passwords_url": APP_PASSWORDS_URL},
    hints={"invalid_credentials": (OTHER_SERVER_HINT, DEFAULT_SERVICE_URL)},
    fallback=(502, _("Something went wrong talking to Bluesky. Nothing was changed; try again later.")),
)
