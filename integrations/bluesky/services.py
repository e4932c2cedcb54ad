"""What views, the API, the admin, tasks and commands do with Bluesky: connect, refresh, disconnect, profile,
test a server, and a channel's health. None of them talk HTTP themselves."""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from integrations.adapter import get_adapter
from integrations.bluesky import errors, lifecycle
from integrations.bluesky import options as bluesky_options
from integrations.bluesky.client import APP_PASSWORD_SCOPES, PdsClient, ServerDescription, Session
from integrations.exceptions import IntegrationError
from integrations.models import Channel, ChannelEvent
from integrations.throttling import hit_connect_attempt, shared_cache
from integrations.validators import normalize_identifier, normalize_service_url

logger = logging.getLogger(__name__)

EXPIRING_WITHIN = timedelta(days=7)
# Refresh clicks (web, API, admin) within this long of a successful rotation answer with the current session.
USER_REFRESH_COALESCE = timedelta(seconds=30)


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


@sensitive_variables("app_password", "session", "replaced_refresh_jwt")
def connect(user: AbstractBaseUser, identifier: str, app_password: str, *, ip: str | None = None) -> Channel:
    """Open an app-password session for `identifier` and store it as the user's channel (created or updated).

    Raises a BlueskyError (nothing stored) when the integration is off, the attempt is throttled, the PDS refuses,
    the password is a main password, or the account is not active.
    """
    if not bluesky_options.enabled():
        raise errors.IntegrationDisabled()
    url = service_url()
    identifier = normalize_identifier(identifier)
    hit_connect_attempt(user_id=user.pk, ip=ip)
    client = PdsClient(url)
    hit_connect_attempt(account=account_key(client, identifier))
    session = client.create_session(identifier, app_password)
    scope = session.access_claims.get("scope")
    if scope not in APP_PASSWORD_SCOPES:
        _revoke_quietly(client, session.refresh_jwt, session.did)
        logger.info("refused a main-password session did=%s scope=%s", session.did, scope)
        raise errors.MainPasswordRefused()
    if not session.active:
        _revoke_quietly(client, session.refresh_jwt, session.did)
        if session.account_status in ("takendown", "suspended"):
            raise errors.AccountSuspended()
        raise errors.AccountDeactivated()

    try:
        channel, replaced_refresh_jwt, replaced_endpoint = _store_connection(user, session, url)
    except IntegrityError:  # the same account connected by a simultaneous request: update that row instead
        channel, replaced_refresh_jwt, replaced_endpoint = _store_connection(user, session, url)
    if replaced_refresh_jwt:  # a reconnection: the old session should not linger on the PDS
        _revoke_quietly(PdsClient(replaced_endpoint), replaced_refresh_jwt, channel.did)
    update_profile(channel)
    return channel


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


@sensitive_variables("session", "replaced_refresh_jwt")
def _store_connection(user: AbstractBaseUser, session: Session, url: str) -> tuple[Channel, str, str]:
    """Create or update the user's channel for the session's account; return it with the session it replaces."""
    with transaction.atomic():
        channel = (
            Channel.objects.select_for_update()
            .filter(user=user, provider=Channel.Provider.BLUESKY, did=session.did)
            .first()
        )
        replaced_refresh_jwt = channel.refresh_jwt if channel else ""
        replaced_endpoint = lifecycle.pds_url(channel) if channel else url
        if channel is None:
            channel = Channel(user=user, provider=Channel.Provider.BLUESKY, did=session.did)
        channel.service_url = url
        channel.pds_endpoint = ""
        lifecycle.store_session(channel, session)
        channel.connected_at = timezone.now()
        channel.refreshed_at = None
        channel.save()
        lifecycle.record_event(channel, ChannelEvent.Kind.CONNECTED, detail=session.pds_endpoint_refused)
    return channel, replaced_refresh_jwt, replaced_endpoint


def refresh_channel(channel: Channel) -> Channel:
    """User-initiated refresh: rotate the tokens now (unless that happened moments ago), then update the profile."""
    lifecycle.refresh(
        channel,
        seen_generation=channel.session_generation,
        force=True,
        ignore_retry_time=channel.last_error_code != errors.RateLimited.code,
        unless_refreshed_within=USER_REFRESH_COALESCE,
    )
    update_profile(channel)
    return channel


def update_profile(channel: Channel) -> bool:
    """Fetch display name, bio and avatar through the lifecycle; on failure mark the profile unavailable."""
    try:
        profile = lifecycle.call(channel, lambda client, token: client.get_profile(token, channel.did))
    except IntegrationError as exc:
        logger.info("profile unavailable (%s) did=%s handle=%s", exc.code, channel.did, channel.handle)
        Channel.objects.filter(pk=channel.pk).update(profile_status=Channel.ProfileStatus.UNAVAILABLE)
        channel.profile_status = Channel.ProfileStatus.UNAVAILABLE
        return False
    changed = (channel.display_name, channel.description, channel.avatar_url) != (
        profile.display_name,
        profile.description,
        profile.avatar_url,
    )
    channel.display_name = profile.display_name
    channel.description = profile.description
    channel.avatar_url = profile.avatar_url
    channel.profile_status = Channel.ProfileStatus.OK
    channel.profile_fetched_at = timezone.now()
    try:
        with transaction.atomic():  # a savepoint: a refused value must not break the caller's transaction
            Channel.objects.filter(pk=channel.pk).update(
                display_name=channel.display_name,
                description=channel.description,
                avatar_url=channel.avatar_url,
                profile_status=channel.profile_status,
                profile_fetched_at=channel.profile_fetched_at,
            )
    except DatabaseError:
        logger.warning("profile could not be stored did=%s handle=%s", channel.did, channel.handle, exc_info=True)
        Channel.objects.filter(pk=channel.pk).update(profile_status=Channel.ProfileStatus.UNAVAILABLE)
        channel.profile_status = Channel.ProfileStatus.UNAVAILABLE
        return False
    if changed:
        lifecycle.record_event(channel, ChannelEvent.Kind.PROFILE_UPDATED)
    return True


@sensitive_variables("refresh_jwt")
def disconnect(channel: Channel) -> bool:
    """Revoke the session on the PDS where possible and wipe the stored tokens; True when the PDS confirmed."""
    revoked = False
    with transaction.atomic():
        row = Channel.objects.select_for_update().get(pk=channel.pk)
        refresh_jwt, url, unreadable = row.refresh_jwt, lifecycle.pds_url(row), row.session_unreadable
        lifecycle.wipe_session(row)
        row.refresh_expires_at = None
        row.status = Channel.Status.DISCONNECTED
        row.next_retry_at = None
        row.save()
    if refresh_jwt:
        revoked = _revoke_quietly(PdsClient(url), refresh_jwt, row.did)
    if revoked:
        detail = "session revoked on the PDS"
    elif unreadable:
        detail = "tokens removed here; they could not be decrypted, so the session was not signed out on the PDS"
    else:
        detail = "tokens removed here; the PDS could not confirm"
    lifecycle.record_event(row, ChannelEvent.Kind.DISCONNECTED, detail=detail)
    lifecycle.copy_session_state(row, channel)
    return revoked


@sensitive_variables("refresh_jwt")
def _revoke_quietly(client: PdsClient, refresh_jwt: str, did: str) -> bool:
    try:
        client.delete_session(refresh_jwt)
    except errors.SessionRejected:
        return True  # already revoked or expired: nothing left to revoke
    except IntegrationError as exc:
        logger.warning("could not revoke a session on the PDS (%s) did=%s", exc.code, did)
        return False
    return True


# --- Health --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Health:
    state: str
    label: str
    advice: str
    action: str  # "", "refresh", "reconnect"

    @property
    def needs_reconnection(self) -> bool:
        return self.state == "needs_reconnection"

    @property
    def expired(self) -> bool:
        return self.state in ("needs_reconnection", "disconnected")


HEALTH_ACTIONS = {
    "active": "",
    "expiring": "refresh",
    "degraded": "refresh",
    "needs_reconnection": "reconnect",
    "deactivated": "refresh",
    "suspended": "",
    "disconnected": "reconnect",
}


def health_state(channel: Channel, now: datetime | None = None) -> str:
    """The one place that decides how a channel is doing (see HEALTH_ACTIONS for the states)."""
    now = now or timezone.now()
    status = channel.status
    ends = channel.refresh_expires_at
    if status == Channel.Status.DISCONNECTED:
        return "disconnected"
    if status == Channel.Status.NEEDS_RECONNECTION or (ends and ends <= now) or channel.session_unreadable:
        return "needs_reconnection"
    if status in (Channel.Status.DEACTIVATED, Channel.Status.SUSPENDED):
        return status
    # Before "degraded": a session that ends within days and could not be renewed is the more urgent news.
    if ends and ends - now <= EXPIRING_WITHIN:
        return "expiring"
    if status == Channel.Status.DEGRADED:
        return "degraded"
    return "active"


def health(channel: Channel, now: datetime | None = None) -> Health:
    """How a channel is doing, in the adapter's words, and the action its owner should take."""
    state = health_state(channel, now)
    texts = state
    if state == "needs_reconnection" and session_unreadable(channel):
        texts = "session_unreadable"  # same state and action; the advice says why (a removed encryption key)
    label, advice = get_adapter().describe_health(
        texts, ends_at=channel.refresh_expires_at, retry_at=channel.next_retry_at
    )
    return Health(state, label, advice, HEALTH_ACTIONS[state])


def session_unreadable(channel: Channel) -> bool:
    """Whether the channel needs reconnection because no configured key decrypts its stored session."""
    return channel.session_unreadable or (
        channel.status == Channel.Status.NEEDS_RECONNECTION and channel.last_error_code == errors.SessionUnreadable.code
    )


PROBLEM_STATES = frozenset({"needs_reconnection", "deactivated", "suspended"})


def take_owner_notices(rows: list[tuple[Channel, Health]]) -> list[tuple[Channel, Health]]:
    """The channels whose owner has not yet been told about their current problem; marks them as told."""
    new = [(channel, h) for channel, h in rows if h.state in PROBLEM_STATES and channel.owner_told_status != h.state]
    for state in {h.state for _, h in new}:
        pks = [channel.pk for channel, h in new if h.state == state]
        Channel.objects.filter(pk__in=pks).update(owner_told_status=state)
    for channel, h in new:
        channel.owner_told_status = h.state
    return new
