"""What views, the API, the admin, tasks and commands do with Bluesky: connect, refresh, disconnect, profile,
test a server, a channel's health, and a post's way from the composer or the API to Bluesky (`submit_post`). None
of them talk HTTP themselves, and none reaches into the provider's subpackages: what they need from there is named
here."""

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError
from django.views.decorators.debug import sensitive_variables

from integrations import pagination
from integrations.bluesky import options as bluesky_options
from integrations.bluesky.accounts import connection, door, following
from integrations.bluesky.accounts.feed import DEFAULT_LIMIT as FEED_DEFAULT_LIMIT  # noqa: F401  (the API's query)
from integrations.bluesky.accounts.feed import MAX_LIMIT as FEED_MAX_LIMIT  # noqa: F401
from integrations.bluesky.accounts.feed import FeedItem, FeedPage, channel_feed  # noqa: F401  (for views and the API)
from integrations.bluesky.accounts.health import (  # noqa: F401  (services is what views, API and admin use)
    PROBLEM_STATES,
    Health,
    channels_with_problems,
    health,
    health_state,
    session_unreadable,
    take_owner_notices,
)
from integrations.bluesky.identity import identifiers, resolution
from integrations.bluesky.posts import languages, linkcards
from integrations.bluesky.posts.accept import ImageRequest, PartRequest, accept  # noqa: F401  (for both)
from integrations.bluesky.posts.accept import edit as edit_post  # noqa: F401  (as named for web and API)
from integrations.bluesky.posts.deletion import delete as delete_post  # noqa: F401

# What the composer and the API check a post against and show while it is written (limits, words, the text as it
# will be sent): named here so that web/ and api/ never import the posts/ modules themselves.
from integrations.bluesky.posts.images import (  # noqa: F401  (the composer's image slots and alt text)
    MAX_ALT_TEXT,
    MAX_IMAGES_PER_POST,
    AltTextRequired,
    AnimatedImage,
    check_alt,
)
from integrations.bluesky.posts.languages import MAX_LANGS, normalize_langs  # noqa: F401  (the composer's languages)
from integrations.bluesky.posts.linkcards import MAX_DESCRIPTION, MAX_TITLE, CardResult  # noqa: F401  (card fields)
from integrations.bluesky.posts.media import store_media  # noqa: F401
from integrations.bluesky.posts.plans import MAX_PLANNED_PARTS, web_url  # noqa: F401  (API limits, bsky.app links)
from integrations.bluesky.posts.readiness import READY_STATES, ensure_channel_ready  # noqa: F401
from integrations.bluesky.posts.references import Target  # noqa: F401  (a replied-to or quoted post, as shown)
from integrations.bluesky.posts.references import look_up as look_up_post  # noqa: F401
from integrations.bluesky.posts.references import parse as parse_reference  # noqa: F401
from integrations.bluesky.posts.richtext import (  # noqa: F401  (the composer's counter and preview)
    MAX_BYTES,
    MAX_GRAPHEMES,
    DetectedFacet,
    PostTooLong,
    TextLength,
    detect_facets,
    link_spans,
    measure,
    prepare_text,
    shorten_links,
)
from integrations.bluesky.posts.richtext import count as count_text  # noqa: F401
from integrations.bluesky.posts.schedule import cancel as cancel_post  # noqa: F401
from integrations.bluesky.posts.schedule import check_schedule  # noqa: F401
from integrations.bluesky.posts.schedule import reschedule as reschedule_post  # noqa: F401
from integrations.bluesky.posts.submit import Outcome, publish
from integrations.bluesky.words import mid_sentence  # noqa: F401  (a reason after "No link card:")
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import APP_PASSWORD_SCOPES, PdsClient, ServerDescription, Session
from integrations.bluesky.xrpc.servers import normalize_service_url, sign_in_url, signs_in_through
from integrations.conf import app_settings
from integrations.exceptions import ChannelConnected, IntegrationError
from integrations.models import Channel, ChannelEvent, Post
from integrations.security.throttling import hit_connect_attempt, shared_cache

logger = logging.getLogger(__name__)


def service_url() -> str:
    """The PDS URL in force (db, env or default); ServiceMisconfigured when the env value is invalid."""
    try:
        return bluesky_options.service_url().value
    except ValidationError as exc:
        raise errors.ServiceMisconfigured("; ".join(exc.messages)) from exc


def service_url_or_none() -> str | None:
    """The PDS URL in force, or None when the configured one is invalid (for pages that only show it)."""
    try:
        return service_url()
    except errors.ServiceMisconfigured:
        return None


def test_connection(url: str) -> ServerDescription:
    """Ask a server to describe itself (`describeServer`): proves it is a PDS and how it is set up."""
    try:
        url = normalize_service_url(url)
    except ValidationError as exc:
        raise errors.ServiceMisconfigured("; ".join(exc.messages)) from exc
    return PdsClient(url).describe_server()


@dataclass(frozen=True)
class AccountCheck:
    """What the admin's Test connection finds about one account: its identity (or what could not be checked) and
    whether it signs in through the Service URL tested."""

    subject: str
    identity: resolution.Identity | None
    problem: str  # what could not be checked, in words ("" when the identity was found)
    temporary: bool  # asking again later may answer differently (a timeout, an unreachable server)
    can_sign_in: bool | None  # None: not known, since where the account lives could not be learnt


def check_account(handle_or_did: str, url: str) -> AccountCheck:
    """Resolve an account for the admin, before any user tries to connect it through `url`: asked afresh (a test
    is no test when it answers from the cache)."""
    subject = handle_or_did.strip().lstrip("@")
    found = resolution.resolve_identity(subject, fresh=True)
    if isinstance(found, resolution.Failure):
        return AccountCheck(subject, None, found.detail or found.kind, found.transient, can_sign_in=None)
    can_sign_in = bool(found.pds) and (signs_in_through(url, found.pds) or may_sign_in_elsewhere(found, subject))
    temporary = found.handle_verified is None
    return AccountCheck(subject, found, "", temporary, can_sign_in)


@sensitive_variables("app_password", "session", "replaced_refresh_jwt")
def connect(user: AbstractBaseUser, identifier: str, app_password: str, *, ip: str | None = None) -> Channel:
    """Open an app-password session for `identifier` and store it as the user's channel (created or updated).

    Raises a BlueskyError (nothing stored) when the integration is off, the attempt is throttled, the PDS refuses,
    the password is a main password, or the account is not active. An account whose DID document places it on
    another server is signed in there when the administrator allows it, else refused with that diagnosis. The
    handle stored is the one the DID document verifies (`following.follow_identity`).
    """
    if not bluesky_options.enabled():
        raise errors.IntegrationDisabled()
    url = service_url()
    identifier = identifiers.normalize_identifier(identifier)
    hit_connect_attempt(user_id=user.pk, ip=ip)
    client = PdsClient(url)
    hit_connect_attempt(account=account_key(client, identifier))
    try:
        session = client.create_session(identifier, app_password)
    except errors.InvalidCredentials as exc:
        hosted = hosted_elsewhere(identifier, url)
        if hosted is None:
            raise
        url, client, session = sign_in_where_hosted(user, identifier, app_password, url, hosted, exc)
    if not session.active and (hosted := hosted_elsewhere(session.did, url)):
        # The server still signs in a deactivated account that its DID document places elsewhere: what an old
        # PDS does after a migration. The account lives on the other server now.
        connection.revoke_quietly(client, session.refresh_jwt, session.did)
        url, client, session = sign_in_where_hosted(user, identifier, app_password, url, hosted, None)
    scope = session.access_claims.get("scope")
    if scope not in APP_PASSWORD_SCOPES:
        connection.revoke_quietly(client, session.refresh_jwt, session.did)
        logger.info("refused a main-password session did=%s scope=%s", session.did, scope)
        raise errors.MainPasswordRefused()
    if not session.active:
        connection.revoke_quietly(client, session.refresh_jwt, session.did)
        if session.account_status in ("takendown", "suspended"):
            raise errors.AccountSuspended()
        raise errors.AccountDeactivated()

    try:
        channel, replaced_refresh_jwt, replaced_endpoint = connection.store_connection(user, session, url)
    except IntegrityError:  # the same account connected by a simultaneous request: update that row instead
        channel, replaced_refresh_jwt, replaced_endpoint = connection.store_connection(user, session, url)
    if replaced_refresh_jwt:  # a reconnection: the old session should not linger on the PDS
        connection.revoke_quietly(PdsClient(replaced_endpoint), replaced_refresh_jwt, channel.did)
    following.follow_identity(channel)  # the handle its DID document verifies
    update_profile(channel)
    return channel


def may_sign_in_elsewhere(found: resolution.Identity, identifier: str) -> bool:
    """Whether an account the Service URL does not host may sign in on its own PDS: the administrator allows
    accounts on other servers, and the identifier is the DID itself or a handle its document verifies."""
    return bluesky_options.other_servers_allowed() and bool(found.handle_verified or identifier.startswith("did:"))


@sensitive_variables("app_password")
def sign_in_where_hosted(
    user: AbstractBaseUser,
    identifier: str,
    app_password: str,
    url: str,
    hosted: resolution.Identity,
    refusal: errors.InvalidCredentials | None,
) -> tuple[str, PdsClient, Session]:
    """Sign in on the account's own PDS when the administrator allows accounts on other servers (and the handle is
    verified); else refuse with the diagnosis. Returns the PDS's URL, a client for it and the session."""
    if not may_sign_in_elsewhere(hosted, identifier):
        raise refuse_elsewhere(user, identifier, url, hosted) from refusal
    assert hosted.pds is not None
    url = sign_in_url(hosted.pds)
    client = PdsClient(url)
    try:
        session = client.create_session(identifier, app_password)
    except errors.InvalidCredentials as exc:
        if refusal is not None:
            raise
        # The old server accepted this password for the deactivated account: it is an app password of the
        # server the account left, which its new server does not know.
        raise errors.AccountMoved(hosted.handle or identifier, hosted.pds) from exc
    if session.did != hosted.did:
        connection.revoke_quietly(client, session.refresh_jwt, session.did)
        raise errors.AccountMismatch(f"{url} signed in {session.did}, not {hosted.did}.") from refusal
    return url, client, session


def hosted_elsewhere(identifier: str, url: str) -> resolution.Identity | None:
    """The identity of an account `url` refused when its DID document names a PDS that does not sign in through
    `url`; else None. Emails cannot be resolved, and a resolution failure is no diagnosis: the refusal stays as the
    server gave it."""
    if "@" in identifier:
        return None
    found = resolution.resolve_identity(identifier, fresh=True)  # a document cached before a migration misleads
    if isinstance(found, resolution.Failure):
        logger.info("no diagnosis for a refused sign-in: %s", found)
        return None
    if not found.pds or signs_in_through(url, found.pds):
        return None
    return found


def refuse_elsewhere(
    user: AbstractBaseUser, identifier: str, url: str, hosted: resolution.Identity
) -> errors.HostedElsewhere:
    """The error for an account hosted on another PDS, logged and put on the event log of the user's channel for
    that account when there is one."""
    assert hosted.pds is not None
    handle = (hosted.handle or identifier) if identifier.startswith("did:") or "@" in identifier else identifier
    error = errors.HostedElsewhere(handle, hosted.pds, url)
    logger.info("refused sign-in: did=%s is hosted on %s, this site signs in through %s", hosted.did, hosted.pds, url)
    channel = Channel.objects.filter(user=user, provider=Channel.Provider.BLUESKY, did=hosted.did).first()
    if channel is not None:
        channel.record_event(ChannelEvent.Kind.CONNECT_REFUSED, detail=str(error), error_code=error.code)
    return error


HANDLE_DID_CACHE_SECONDS = 300


def account_key(client: PdsClient, identifier: str) -> str:
    """The account a sign-in identifier names, for per-account limits: however it is spelled, one account is one
    key. A DID as it is, an email lower-cased, a handle as the DID it resolves to (cached for a few minutes; the
    handle itself when it does not resolve)."""
    if identifier.startswith("did:"):
        return identifier
    if "@" in identifier:
        return identifier.lower()
    cache = shared_cache()
    cache_key = "integrations:handle-did:" + hashlib.sha256(identifier.encode()).hexdigest()[:32]
    did = cache.get(cache_key)
    if did is None:
        try:
            did = client.resolve_handle(identifier)
        except (errors.PdsUnreachable, errors.PdsTimeout):
            raise  # createSession would meet the same silence: say so now instead of waiting twice
        except IntegrationError as exc:
            logger.info("could not resolve a handle for the connect limit (%s)", exc.code)
            did = ""
        cache.set(cache_key, did, HANDLE_DID_CACHE_SECONDS)
    return did or identifier


def refresh_channel(channel: Channel) -> Channel:
    """User-initiated refresh: rotate the tokens now (unless that happened moments ago), then update the profile."""
    door.refresh(
        channel,
        seen_generation=channel.session_generation,
        force=True,
        ignore_retry_time=channel.last_error_code != errors.RateLimited.code,
        unless_refreshed_within=timedelta(seconds=app_settings.REFRESH_COALESCE),
    )
    update_profile(channel)
    return channel


def update_profile(channel: Channel) -> bool:
    """Fetch display name, bio and avatar through the session door; on failure mark the profile unavailable."""
    try:
        profile = door.call(channel, lambda client, token: client.get_profile(token, channel.did))
    except IntegrationError as exc:
        logger.info("profile unavailable (%s) did=%s handle=%s", exc.code, channel.did, channel.handle)
        channel.mark_profile_unavailable()
        return False
    changed = (channel.display_name, channel.description, channel.avatar_url) != (
        profile.display_name,
        profile.description,
        profile.avatar_url,
    )
    try:
        channel.store_profile(profile.display_name, profile.description, profile.avatar_url)
    except DatabaseError:
        logger.warning("profile could not be stored did=%s handle=%s", channel.did, channel.handle, exc_info=True)
        channel.mark_profile_unavailable()
        return False
    if changed:
        channel.record_event(ChannelEvent.Kind.PROFILE_UPDATED)
    return True


def disconnect(channel: Channel) -> bool:
    """Revoke the session on the PDS where possible and wipe the stored tokens; True when the PDS confirmed."""
    return connection.disconnect(channel)


def remove(channel: Channel) -> None:
    """Delete a disconnected channel and its history; ChannelConnected while it still holds a session."""
    if channel.status != Channel.Status.DISCONNECTED:
        raise ChannelConnected()
    channel.delete()


def recent_events(channel: Channel) -> list[ChannelEvent]:
    """The channel's latest events, newest first: the same list on its page and on the API's first page."""
    return events_page(channel).items


def events_page(channel: Channel, cursor: str | None = None, limit: int | None = None) -> pagination.Page:
    """A page of the channel's events, newest first (the first one as long as its page's list); InvalidCursor for a
    cursor that is not one of this list's."""
    return pagination.page(
        channel.events.all(), ChannelEvent._meta.ordering, cursor, limit or app_settings.EVENTS_SHOWN
    )


# --- posts: the one way from the composer or the API to Bluesky ------------------------------------------------------
def submit_post(
    user: AbstractBaseUser,
    channel: Channel,
    parts: Sequence[PartRequest],
    *,
    reply_to: str = "",
    quote: str = "",
    default_lang: str = "",
    scheduled_at: datetime | None = None,
) -> Outcome:
    """Accept a post (checked, planned and stored: see `posts.accept`) and, unless it is scheduled, make its
    first attempt now; what the composer's Publish and the API's create both do. The outcome's post is as stored:
    `scheduled`, `published`, `waiting` or `failed`. Raises the app's errors when the post is refused (nothing is
    stored then)."""
    post = accept(
        user,
        channel,
        parts,
        reply_to=reply_to,
        quote=quote,
        default_lang=default_lang,
        scheduled_at=scheduled_at,
    )
    if post.status == Post.Status.SCHEDULED:
        return Outcome(post)
    return publish(post.pk, claimed=post)


def publish_again(post: Post) -> Outcome:
    """Publish a failed or waiting post again: the same plan, so nothing is ever posted twice."""
    return publish(post.pk, retry=True)


def post_language(request: Any) -> str:
    """The language a post written in this request gets when it names none (see `languages.default_lang`)."""
    return languages.default_lang(getattr(request, "LANGUAGE_CODE", None))


def can_publish(channel_health: Health) -> bool:
    """Whether a channel in this health can publish (whether Bluesky is switched on is another matter)."""
    return channel_health.state in READY_STATES


def fetch_card(url: str, *, user_id: int | None = None) -> CardResult:
    """The link card of the page at `url`, as `linkcards.fetch_card` reads it (cached; on `user_id`'s budget)."""
    return linkcards.fetch_card(url, user_id=user_id)
