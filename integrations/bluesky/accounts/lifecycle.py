"""A channel's session lifecycle: every authenticated call to a PDS goes through `call()`.

- Proactive: an access token that ends within the margin (`INTEGRATIONS_REFRESH_MARGIN`, default 5 minutes) is
  refreshed before the call.
- Reactive: a call the PDS answers with "token expired/invalid" triggers one refresh and one replay; never a loop.
- Never a new `createSession`: the app password is not kept, by design.
- Refreshes are serialised across threads and processes by locking the channel row (`select_for_update`; on
  SQLite the IMMEDIATE transaction mode takes the database write lock). Under the lock the row is re-read and
  refreshed only if its tokens are still the ones that needed it (`session_generation`); a caller that waited
  uses the tokens the winner stored.
- Refresh failures are classified in one place (`_classify`): a dead refresh token wipes the session and asks for
  a reconnection; a temporary fault keeps every token as it was and marks the channel degraded with a retry time.
- After a sign-in and every refresh that reached the server, the account's DID document is read again
  (`follow_identity`): the handle shown is the one it verifies, and a PDS that moved is followed (or, when the
  session cannot go there, the channel asks for a reconnection that says where the account lives now).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from integrations.bluesky.accounts.health import health_state
from integrations.bluesky.identity import resolution
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import MAX_ENDPOINT_LENGTH, PdsClient, Session, claim_time
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError
from integrations.models import Channel, ChannelEvent
from integrations.signals import channel_connected, channel_disconnected, channel_health_changed, send_on_commit

logger = logging.getLogger(__name__)

DEFAULT_RETRY_DELAY = 300
_THREAD_LOCKS = [threading.Lock() for _ in range(64)]  # striped by channel id


def refresh_margin() -> timedelta:
    """How long before its expiry an access token is refreshed proactively."""
    return timedelta(seconds=app_settings.REFRESH_MARGIN)


@sensitive_variables()
def call[T](channel: Channel, fn: Callable[[PdsClient, str], T]) -> T:
    """Run `fn(client, access_jwt)` with a valid access token for `channel`, refreshing when needed.

    `channel` is updated in place with whatever tokens end up in force. A call the server refuses because the
    account is deactivated or suspended marks the channel so at once (its health, its event log, the signal), as a
    dead session does: a failed post is news about the channel too.
    """
    try:
        return _call(channel, fn)
    except (errors.AccountDeactivated, errors.AccountSuspended) as exc:
        mark_account_refused(channel, exc)
        raise


@sensitive_variables()
def _call[T](channel: Channel, fn: Callable[[PdsClient, str], T]) -> T:
    if channel.session_unreadable:
        with transaction.atomic():  # marked on the locked row, so concurrent callers record it once
            row = Channel.objects.select_for_update().get(pk=channel.pk)
            failure = mark_session_unreadable(row) if row.session_unreadable else None
        copy_session_state(row, channel)  # a reconnection may have happened meanwhile: then go on with it
        if failure is not None:
            raise failure
    if not channel.refresh_jwt:
        raise no_session_error(channel)
    if channel.access_expires_within(refresh_margin()):
        try:
            refresh(channel, seen_generation=channel.session_generation)
        except IntegrationError as exc:
            # A temporary fault while the access token still works: use it (the refresh is retried later).
            expires = channel.access_expires_at
            still_valid = bool(channel.access_jwt) and expires is not None and expires > timezone.now()
            if not (exc.temporary and still_valid):
                raise
            logger.info("proactive refresh failed (%s); using the current token did=%s", exc.code, channel.did)
    _require_session(channel)
    client = PdsClient(channel.pds_url)
    generation = channel.session_generation
    try:
        return fn(client, channel.access_jwt)
    except errors.SessionRejected:
        logger.info("access token rejected; refreshing once did=%s handle=%s", channel.did, channel.handle)
        refresh(channel, seen_generation=generation, force=True)
        _require_session(channel)
        return fn(PdsClient(channel.pds_url), channel.access_jwt)


def _require_session(channel: Channel) -> None:
    """After waiting on another caller's refresh, the session may be gone: say so instead of calling with ''."""
    if not channel.refresh_jwt or not channel.access_jwt:
        raise no_session_error(channel)


def no_session_error(channel: Channel) -> IntegrationError:
    """What to raise for a channel without a session: expired or unreadable (reconnect), or not connected."""
    if channel.status == Channel.Status.NEEDS_RECONNECTION:
        if channel.last_error_code == errors.SessionUnreadable.code:
            return errors.SessionUnreadable()
        return errors.SessionExpired()
    return errors.NoSession()


def mark_session_unreadable(channel: Channel) -> errors.SessionUnreadable:
    """Record that no configured key decrypts the channel's stored session; return the error to raise.

    The channel needs reconnection (once: a row already marked is left alone, so each cause gets one event). The
    ciphertext stays as it is, so putting the dropped key back brings the session back; the keep-alive no longer
    picks the row up, and a reconnection overwrites it.
    """
    already = (
        channel.status == Channel.Status.NEEDS_RECONNECTION and channel.last_error_code == errors.SessionUnreadable.code
    )
    if not already:
        channel.status = Channel.Status.NEEDS_RECONNECTION
        channel.last_error_code = errors.SessionUnreadable.code
        channel.next_retry_at = None
        # Only these columns: a full save would write the empty value the unreadable tokens read as.
        channel.save(update_fields=["status", "last_error_code", "next_retry_at", "updated_at"])
        channel.record_event(
            ChannelEvent.Kind.NEEDS_RECONNECTION,
            error_code=errors.SessionUnreadable.code,
            detail="no configured encryption key decrypts the stored session",
        )
        logger.warning(
            "stored session unreadable (its encryption key was removed); channel needs reconnection did=%s handle=%s",
            channel.did,
            channel.handle,
        )
    return errors.SessionUnreadable()


def mark_account_refused(channel: Channel, exc: errors.AccountDeactivated | errors.AccountSuspended) -> None:
    """Record on the channel that its server refused a call because the account is deactivated or suspended (once:
    a channel already in that state, or without a session, is left alone). A refresh that finds the account
    active again makes it active."""
    status = Channel.Status.DEACTIVATED if isinstance(exc, errors.AccountDeactivated) else Channel.Status.SUSPENDED
    with transaction.atomic():
        row = Channel.objects.select_for_update().get(pk=channel.pk)
        if row.status in (status, Channel.Status.DISCONNECTED, Channel.Status.NEEDS_RECONNECTION):
            return
        old_state = health_state(row)
        row.status, row.last_error_code, row.next_retry_at = status, exc.code, None
        row.save(update_fields=["status", "last_error_code", "next_retry_at", "updated_at"])
        row.record_event(ChannelEvent.Kind.CALL_REFUSED, error_code=exc.code)
        logger.warning("call refused: account %s did=%s handle=%s", status, row.did, row.handle)
        announce_health(row, old_state)
    copy_session_state(row, channel)


@sensitive_variables()
def refresh(
    channel: Channel,
    *,
    seen_generation: int | None = None,
    force: bool = False,
    ignore_retry_time: bool = False,
    unless_refreshed_within: timedelta | None = None,
) -> bool:
    """Refresh `channel`'s session unless another caller already did; return True when this call refreshed.

    `seen_generation`: the session generation the caller's tokens came from; when the row has moved on, its
    tokens are used as they are. Without `force`, a token that is not yet within the margin is left alone.
    `unless_refreshed_within`: a healthy session rotated less than this long ago is left as it is (a user
    clicking Refresh repeatedly gets the current state, not one rotation per click).
    Raises the classified error when the refresh fails (after recording it on the row).
    """
    # Threads of one process queue on a Python lock first, so a waiter sees the winner's tokens with a plain read
    # instead of queuing on the database lock (which SQLite waits for by polling with growing sleeps).
    with _THREAD_LOCKS[channel.pk % len(_THREAD_LOCKS)]:
        if seen_generation is not None:
            current = Channel.objects.filter(pk=channel.pk).first()
            if current is not None and current.session_generation != seen_generation:
                copy_session_state(current, channel)
                return False
        outcome = _refresh_under_row_lock(channel, seen_generation, force, ignore_retry_time, unless_refreshed_within)
    # Outside the thread lock: reading the DID document is network time that other channels should not wait for.
    failure = outcome.failure
    if outcome.reached_server and (failure is None or isinstance(failure, _SERVER_MAY_HAVE_MOVED)):
        suspect_move = failure is not None or channel.status == Channel.Status.DEACTIVATED
        if moved := follow_identity(channel, suspect_move=suspect_move):
            raise moved from failure
    if failure is not None:
        raise failure
    return outcome.refreshed


@dataclass(frozen=True)
class _RefreshOutcome:
    refreshed: bool
    failure: IntegrationError | None
    reached_server: bool  # a refreshSession call was made (or failed to reach the server)


# Refresh failures after which the account's DID document may explain more than the old server does: a dead
# session, a deactivated account (what an old PDS says after a migration) or a server that is gone.
_SERVER_MAY_HAVE_MOVED = (
    errors.SessionExpired,
    errors.AccountDeactivated,
    errors.PdsUnreachable,
    errors.PdsTimeout,
)


def follow_identity(channel: Channel, *, suspect_move: bool = False) -> errors.AccountMoved | None:
    """Read the account's DID document again (not from the cache) and follow it; return the error to raise when
    the account moved where this channel's session cannot follow.

    - The handle becomes the document's, verified when it resolves back to the DID, not verified when it does not
      (a lookup that fails for now changes nothing).
    - A PDS the channel's sign-in server covers (the same server, or one of Bluesky's hosts behind its entryway)
      becomes the channel's PDS.
    - Any other PDS is a move only when the server agrees something changed (`suspect_move`: it said the account
      is deactivated, the session is dead, or it cannot be reached): then the old session is signed out and removed
      and the channel needs a reconnection that names the new server. Otherwise (a Service URL that names the PDS
      differently than its document does) nothing changes: a sign-in the server accepts is never undone.
    Nothing changes when the channel's session changed meanwhile, or the document cannot be read.
    """
    before = Channel.objects.filter(pk=channel.pk).first()
    if before is None:
        return None
    found = resolution.resolve_identity(before.did, fresh=True)
    if isinstance(found, resolution.Failure):
        logger.info("identity not followed: %s", found)
        return None
    if _identity_plan(before, found, suspect_move) is None:
        return None  # the usual case: nothing to write, no lock taken
    with transaction.atomic():
        row = Channel.objects.select_for_update().get(pk=channel.pk)
        plan = _identity_plan(row, found, suspect_move)
        if row.session_generation != before.session_generation or row.status == Channel.Status.DISCONNECTED:
            plan = None  # a reconnection, another refresh or a disconnection happened meanwhile: theirs stands
        if plan is None:
            copy_session_state(row, channel)
            return None
        old_state = health_state(row)
        refresh_jwt, old_url = row.refresh_jwt, row.pds_url
        row.handle, row.handle_verified, row.pds_endpoint = plan.handle, plan.handle_verified, plan.pds_endpoint
        if plan.moved_to:
            row.wipe_session()
            row.status = Channel.Status.NEEDS_RECONNECTION
            row.last_error_code = errors.AccountMoved.code
            row.next_retry_at = None
        row.save()
        if plan.changes:
            row.record_event(ChannelEvent.Kind.IDENTITY_CHANGED, detail="; ".join(plan.changes)[:500])
        if plan.moved_to:
            row.record_event(ChannelEvent.Kind.NEEDS_RECONNECTION, error_code=errors.AccountMoved.code)
            logger.warning("account moved to %s; channel needs reconnection did=%s", plan.moved_to, row.did)
        announce_health(row, old_state)
    moved_to = plan.moved_to
    copy_session_state(row, channel)
    if not moved_to:
        return None
    if refresh_jwt:
        revoke_quietly(PdsClient(old_url), refresh_jwt, row.did)
    return errors.AccountMoved(row.handle, moved_to)


@dataclass(frozen=True)
class _IdentityPlan:
    handle: str
    handle_verified: bool | None
    pds_endpoint: str
    moved_to: str  # "" unless the account moved where the session cannot follow
    changes: list[str]  # what the event log says (a handle confirmed as before is no news)


def _identity_plan(row: Channel, found: resolution.Identity, suspect_move: bool) -> _IdentityPlan | None:
    """What following `found` changes on `row` (see `follow_identity`), or None when nothing."""
    changes = []
    verified = row.handle_verified if found.handle_verified is None else found.handle_verified
    handle = found.handle or row.handle
    if handle != row.handle:
        changes.append(f"handle @{row.handle} is now @{handle}")
    if verified is False and row.handle_verified is not False:
        changes.append(f"@{handle} is not verified (it does not resolve to {row.did})")
    pds_endpoint, moved_to = row.pds_endpoint, ""
    pds = found.pds if found.pds and len(found.pds) <= MAX_ENDPOINT_LENGTH else None
    if pds and resolution.signs_in_through(row.service_url, pds):
        if not resolution.same_server(pds, row.pds_url):
            changes.append(f"its PDS is now {pds}")
            pds_endpoint = pds
    elif pds and suspect_move and row.status != Channel.Status.DISCONNECTED:
        moved_to = pds_endpoint = pds
        changes.append(f"the account moved to {pds}; the session on {row.pds_url} was signed out")
    if not moved_to and (handle, verified, pds_endpoint) == (row.handle, row.handle_verified, row.pds_endpoint):
        return None
    return _IdentityPlan(handle, verified, pds_endpoint, moved_to, changes)


@sensitive_variables()
def _refresh_under_row_lock(
    channel: Channel,
    seen_generation: int | None,
    force: bool,
    ignore_retry_time: bool,
    unless_refreshed_within: timedelta | None,
) -> _RefreshOutcome:
    failure: IntegrationError | None = None
    refreshed = reached_server = False
    with transaction.atomic():
        row = Channel.objects.select_for_update().get(pk=channel.pk)
        now = timezone.now()
        old_state = health_state(row, now)
        if row.session_unreadable:
            failure = mark_session_unreadable(row)
        elif not row.refresh_jwt:
            failure = no_session_error(row)
        elif seen_generation is not None and row.session_generation != seen_generation:
            pass  # someone refreshed while we waited: use their tokens
        elif (not force and not row.access_expires_within(refresh_margin(), now)) or _recently_refreshed(
            row, unless_refreshed_within, now
        ):
            pass  # nothing to do: the token in force is fine
        elif (
            not ignore_retry_time
            and row.status == Channel.Status.DEGRADED
            and row.next_retry_at
            and row.next_retry_at > now
        ):
            failure = errors.TemporaryError(
                "waiting before the next refresh attempt",
                retry_after=int((row.next_retry_at - now).total_seconds()) + 1,
            )
            failure.code = row.last_error_code or failure.code
        else:
            reached_server = True
            try:
                session = PdsClient(row.pds_url).refresh_session(row.refresh_jwt)
            except IntegrationError as exc:
                failure = _classify(row, exc)
            else:
                if session.did != row.did:
                    failure = _refuse_other_account(row, session)
                else:
                    store_session(row, session)
                    row.refreshed_at = now
                    row.save()
                    row.record_event(ChannelEvent.Kind.REFRESHED, detail=session.pds_endpoint_refused)
                    refreshed = True
        announce_health(row, old_state)
    copy_session_state(row, channel)
    return _RefreshOutcome(refreshed, failure, reached_server)


def _recently_refreshed(row: Channel, within: timedelta | None, now: datetime) -> bool:
    """Whether a healthy session was rotated less than `within` ago (and its access token is not ending)."""
    return bool(
        within
        and row.status == Channel.Status.ACTIVE
        and row.refreshed_at
        and now - row.refreshed_at < within
        and not row.access_expires_within(refresh_margin(), now)
    )


def _refuse_other_account(row: Channel, session: Session) -> IntegrationError:
    """A refresh answered for another DID: keep the channel exactly as it was and say so."""
    row.record_event(
        ChannelEvent.Kind.REFRESH_FAILED,
        error_code=errors.AccountMismatch.code,
        detail=f"the server answered with a session for another account ({session.did}); nothing was stored",
    )
    logger.warning("refresh answered for another account did=%s other=%s", row.did, session.did)
    return errors.AccountMismatch(f"The server answered for {session.did} instead of {row.did}.")


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
    row.next_retry_at = None
    row.last_error_code = ""
    row.owner_told_status = ""
    if session.active:
        row.status = Channel.Status.ACTIVE
    elif session.account_status in ("takendown", "suspended"):
        row.status = Channel.Status.SUSPENDED
    else:
        row.status = Channel.Status.DEACTIVATED


def _classify(row: Channel, exc: IntegrationError) -> IntegrationError:
    """Record a failed refresh on the locked row and return the error the caller should see."""
    now = timezone.now()
    # Only the PDS's own verdict (an XRPC error code) ends a session; a bare 401 from a proxy does not.
    session_dead = isinstance(exc, errors.SessionRejected | errors.InvalidCredentials | errors.SessionExpired)
    if session_dead and exc.upstream_error:
        row.wipe_session()
        row.refresh_expires_at = None  # no session is valid until any time now
        row.status = Channel.Status.NEEDS_RECONNECTION
        row.last_error_code = errors.SessionExpired.code
        row.next_retry_at = None
        row.save()
        row.record_event(ChannelEvent.Kind.REFRESH_FAILED, error_code=exc.code, detail="refresh token rejected")
        row.record_event(ChannelEvent.Kind.NEEDS_RECONNECTION, error_code=errors.SessionExpired.code)
        logger.warning("refresh token dead; channel needs reconnection did=%s handle=%s", row.did, row.handle)
        return errors.SessionExpired(status_code=exc.status_code, upstream_error=exc.upstream_error)
    if isinstance(exc, errors.AccountDeactivated | errors.AccountSuspended):
        row.status = (
            Channel.Status.DEACTIVATED if isinstance(exc, errors.AccountDeactivated) else Channel.Status.SUSPENDED
        )
        row.last_error_code = exc.code
        row.next_retry_at = None
        row.save()
        row.record_event(ChannelEvent.Kind.REFRESH_FAILED, error_code=exc.code)
        logger.warning("refresh refused: account %s did=%s handle=%s", row.status, row.did, row.handle)
        return exc
    # Anything else is temporary: tokens stay exactly as they were.
    delay = exc.retry_after or DEFAULT_RETRY_DELAY
    row.status = Channel.Status.DEGRADED
    row.last_error_code = exc.code
    row.next_retry_at = now + timedelta(seconds=delay)
    row.save(update_fields=["status", "last_error_code", "next_retry_at", "updated_at"])
    row.record_event(ChannelEvent.Kind.REFRESH_FAILED, error_code=exc.code, detail=f"retry after {delay} s")
    logger.warning(
        "refresh failed temporarily (%s); retry at %s did=%s handle=%s",
        exc.code,
        row.next_retry_at.isoformat(),
        row.did,
        row.handle,
    )
    if isinstance(exc, errors.AddressRefused | errors.Redirected):
        return exc  # the server's address is what is wrong: say so (tokens are kept all the same)
    if not exc.temporary:  # an unexpected 4xx: still never drop the session for it
        error = errors.TemporaryError(exc.detail, status_code=exc.status_code, retry_after=delay)
        error.url = exc.url
        return error
    exc.retry_after = delay
    return exc


def announce_health(row: Channel, old_state: str | None) -> None:
    """Send `channel_health_changed` (once the transaction commits) when the row's health moved from `old_state`."""
    new_state = health_state(row)
    if old_state is not None and new_state != old_state:
        logger.info("channel health %s -> %s did=%s handle=%s", old_state, new_state, row.did, row.handle)
        send_on_commit(channel_health_changed, Channel, channel=row, old_state=old_state, new_state=new_state)


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
        channel.connected_at = timezone.now()
        channel.refreshed_at = None
        channel.save()
        channel.record_event(ChannelEvent.Kind.CONNECTED, detail=session.pds_endpoint_refused)
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
        row.wipe_session()
        row.refresh_expires_at = None
        row.status = Channel.Status.DISCONNECTED
        row.next_retry_at = None
        row.save()
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
