"""A channel's stored connection: a fresh session put on the row, the connection created or renewed, a disconnection,
and signing a session out on its PDS."""

import logging

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from integrations.bluesky.accounts.health import announce_health, health_state
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import PdsClient, Session
from integrations.bluesky.xrpc.tokens import claim_time
from integrations.exceptions import IntegrationError
from integrations.models import Channel, ChannelEvent
from integrations.signals import channel_connected, channel_disconnected, send_on_commit

logger = logging.getLogger(__name__)


def store_session(row: Channel, session: Session) -> None:
    """Put a fresh session's tokens, expiries and account state on the row (not saved).

    A PDS endpoint the client refused (`session.pds_endpoint_refused`, for the caller's event) puts the channel back
    on the Service URL; a DID document without one leaves the endpoint as it was.
    """
    access_claims = session.access_claims
    row.access_jwt = session.access_jwt
    row.refresh_jwt = session.refresh_jwt
    row.access_expires_at = claim_time(access_claims)
    row.refresh_expires_at = claim_time(session.refresh_claims)
    row.scope = str(access_claims.get("scope", ""))[:100]
    if session.handle and session.handle != row.handle and row.handle_verified is not True:
        # A handle the DID document verified stays until the document says otherwise (`follow_identity`); any other
        # is the server's word, not checked yet.
        row.handle, row.handle_verified = session.handle, None
    if session.pds_endpoint:
        row.pds_endpoint = session.pds_endpoint
    elif session.pds_endpoint_refused:
        row.pds_endpoint = ""
    row.session_generation += 1
    if session.active:
        row.take_session_state(Channel.Status.ACTIVE)
    elif session.account_status in ("takendown", "suspended"):
        row.take_session_state(Channel.Status.SUSPENDED)
    else:
        row.take_session_state(Channel.Status.DEACTIVATED)


@sensitive_variables("session", "replaced_refresh_jwt")
def store_connection(user: AbstractBaseUser, session: Session, url: str) -> tuple[Channel, str, str]:
    """Create or update the user's channel for the session's account; return it with the refresh token and server
    of the session it replaces ("" when there was none)."""
    with transaction.atomic():
        channel = (
            Channel.objects.select_for_update()
            .filter(user=user, provider=Channel.Provider.BLUESKY, did=session.did)
            .first()
        )
        existed = channel is not None
        old_state = health_state(channel) if channel else None
        replaced_refresh_jwt = channel.refresh_jwt if channel else ""
        replaced_endpoint = channel.pds_url if channel else url
        if channel is None:
            channel = Channel(user=user, provider=Channel.Provider.BLUESKY, did=session.did)
        channel.service_url = url
        channel.pds_endpoint = ""
        channel.handle_verified = None  # checked again for this sign-in (`follow_identity`)
        store_session(channel, session)
        channel.mark_connected(detail=session.pds_endpoint_refused)
        announce_health(channel, old_state)
        send_on_commit(channel_connected, Channel, channel=channel, reconnected=existed)
    return channel, replaced_refresh_jwt, replaced_endpoint


@sensitive_variables("refresh_jwt")
def disconnect(channel: Channel) -> bool:
    """Wipe the stored tokens and revoke the session on the PDS where possible; True when the PDS confirmed.

    Idempotent: a channel already disconnected (no session stored) is left as it is, with no event and no
    `channel_disconnected` signal, and False (nothing was signed out now), so retried or repeated disconnects
    cannot fill its history."""
    with transaction.atomic():
        row = Channel.objects.select_for_update().get(pk=channel.pk)
        holds_session = row.has_session or bool(row.access_jwt) or row.session_unreadable
        if row.status == Channel.Status.DISCONNECTED and not holds_session:
            copy_session_state(row, channel)
            return False
        old_state = health_state(row)
        refresh_jwt, url, unreadable = row.refresh_jwt, row.pds_url, row.session_unreadable
        row.mark_disconnected()
    revoked = revoke_quietly(PdsClient(url), refresh_jwt, row.did) if refresh_jwt else False
    if revoked:
        detail = "session revoked on the PDS"
    elif unreadable:
        detail = "tokens removed here; they could not be decrypted, so the session was not signed out on the PDS"
    else:
        detail = "tokens removed here; the PDS could not confirm"
    row.record_event(ChannelEvent.Kind.DISCONNECTED, detail=detail)
    copy_session_state(row, channel)
    announce_health(row, old_state)
    send_on_commit(channel_disconnected, Channel, channel=row, revoked=revoked)
    return revoked


@sensitive_variables("refresh_jwt")
def revoke_quietly(client: PdsClient, refresh_jwt: str, did: str) -> bool:
    """Sign a session out on its PDS (`deleteSession`); False, logged, when the PDS could not confirm it."""
    try:
        client.delete_session(refresh_jwt)
    except errors.SessionRejected:
        return True  # already revoked or expired: nothing left to revoke
    except IntegrationError as exc:
        logger.warning("could not revoke a session on the PDS (%s) did=%s", exc.code, did)
        return False
    return True


_STATE_FIELDS = (
    "access_jwt",
    "refresh_jwt",
    "access_expires_at",
    "refresh_expires_at",
    "scope",
    "handle",
    "handle_verified",
    "pds_endpoint",
    "session_generation",
    "status",
    "last_error_code",
    "next_retry_at",
    "refreshed_at",
    "updated_at",
)


def copy_session_state(source: Channel, target: Channel) -> None:
    """Bring an in-memory channel up to date with the session state of a freshly read row."""
    if source is not target:
        for name in _STATE_FIELDS:
            setattr(target, name, getattr(source, name))
