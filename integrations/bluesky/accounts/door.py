"""The session door: every authenticated call to a PDS goes through `call()`.

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
- After every refresh that reached the server, the account's DID document is read again
  (`following.follow_identity`).
"""

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from integrations.bluesky.accounts.connection import copy_session_state, store_session
from integrations.bluesky.accounts.following import follow_identity
from integrations.bluesky.accounts.health import announce_health, health_state
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import PdsClient, Session
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError
from integrations.models import Channel, ChannelEvent, EventNote

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
        # Only the state columns (no `save_all`): a full save would write the empty value the unreadable tokens
        # read as.
        channel.mark_needs_reconnection(
            errors.SessionUnreadable.code, detail="no configured encryption key decrypts the stored session"
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
        row.mark_account_refused(status, exc.code, event_kind=ChannelEvent.Kind.CALL_REFUSED)
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
        wanted = _Wanted(seen_generation, force, ignore_retry_time, unless_refreshed_within)
        outcome = _refresh_under_row_lock(channel, wanted)
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
class _Wanted:
    """What the caller of `refresh` asked for (see there)."""

    seen_generation: int | None
    force: bool
    ignore_retry_time: bool
    unless_refreshed_within: timedelta | None


@dataclass(frozen=True)
class _RefreshOutcome:
    refreshed: bool
    failure: IntegrationError | None
    reached_server: bool  # a refreshSession call was made (or failed to reach the server)


_NOTHING_DONE = _RefreshOutcome(refreshed=False, failure=None, reached_server=False)

# Refresh failures after which the account's DID document may explain more than the old server does: a dead
# session, a deactivated account (what an old PDS says after a migration) or a server that is gone.
_SERVER_MAY_HAVE_MOVED = (
    errors.SessionExpired,
    errors.AccountDeactivated,
    errors.PdsUnreachable,
    errors.PdsTimeout,
)


class _Step(enum.Enum):
    """What a refresh does with the locked row (decided by `_next_step`, done by `_take_step`)."""

    MARK_UNREADABLE = enum.auto()  # no configured key decrypts the session
    NO_SESSION = enum.auto()  # nothing to refresh with
    USE_THEIRS = enum.auto()  # someone refreshed while we waited: use their tokens
    KEEP = enum.auto()  # the token in force is fine
    WAIT = enum.auto()  # degraded, and its retry time has not come
    REFRESH = enum.auto()  # ask the server


@sensitive_variables()
def _refresh_under_row_lock(channel: Channel, wanted: _Wanted) -> _RefreshOutcome:
    """Decide and do the refresh on the locked row; `channel` gets whatever state the row ends in."""
    with transaction.atomic():
        row = Channel.objects.select_for_update().get(pk=channel.pk)
        now = timezone.now()
        old_state = health_state(row, now)
        outcome = _take_step(row, _next_step(row, wanted, now), now)
        announce_health(row, old_state)
    copy_session_state(row, channel)
    return outcome


def _next_step(row: Channel, wanted: _Wanted, now: datetime) -> _Step:
    """The one decision of a refresh, from the locked row and what the caller asked for."""
    if row.session_unreadable:
        return _Step.MARK_UNREADABLE
    if not row.refresh_jwt:
        return _Step.NO_SESSION
    if wanted.seen_generation is not None and row.session_generation != wanted.seen_generation:
        return _Step.USE_THEIRS
    if (not wanted.force and not row.access_expires_within(refresh_margin(), now)) or _recently_refreshed(
        row, wanted.unless_refreshed_within, now
    ):
        return _Step.KEEP
    if not wanted.ignore_retry_time and _waiting_to_retry(row, now):
        return _Step.WAIT
    return _Step.REFRESH


def _take_step(row: Channel, step: _Step, now: datetime) -> _RefreshOutcome:
    """Do what `_next_step` decided on the locked row."""
    match step:
        case _Step.MARK_UNREADABLE:
            return _RefreshOutcome(refreshed=False, failure=mark_session_unreadable(row), reached_server=False)
        case _Step.NO_SESSION:
            return _RefreshOutcome(refreshed=False, failure=no_session_error(row), reached_server=False)
        case _Step.WAIT:
            return _RefreshOutcome(refreshed=False, failure=_still_waiting(row, now), reached_server=False)
        case _Step.REFRESH:
            return _refresh_on_server(row, now)
    return _NOTHING_DONE


def _recently_refreshed(row: Channel, within: timedelta | None, now: datetime) -> bool:
    """Whether a healthy session was rotated less than `within` ago (and its access token is not ending)."""
    return bool(
        within
        and row.status == Channel.Status.ACTIVE
        and row.refreshed_at
        and now - row.refreshed_at < within
        and not row.access_expires_within(refresh_margin(), now)
    )


def _waiting_to_retry(row: Channel, now: datetime) -> bool:
    """Whether a degraded channel's retry time is still to come."""
    return bool(row.status == Channel.Status.DEGRADED and row.next_retry_at and row.next_retry_at > now)


def _still_waiting(row: Channel, now: datetime) -> IntegrationError:
    """The error for a refresh asked before a degraded channel's retry time: its last error, and the time left."""
    failure = errors.TemporaryError(
        "waiting before the next refresh attempt",
        retry_after=int((row.next_retry_at - now).total_seconds()) + 1,
    )
    failure.code = row.last_error_code or failure.code
    return failure


@sensitive_variables()
def _refresh_on_server(row: Channel, now: datetime) -> _RefreshOutcome:
    """Call `refreshSession` and store its answer on the locked row, or record why not."""
    try:
        session = PdsClient(row.pds_url).refresh_session(row.refresh_jwt)
    except IntegrationError as exc:
        return _RefreshOutcome(refreshed=False, failure=_classify(row, exc), reached_server=True)
    if session.did != row.did:
        return _RefreshOutcome(refreshed=False, failure=_refuse_other_account(row, session), reached_server=True)
    store_session(row, session)
    row.mark_refreshed(now, detail=session.pds_endpoint_refused)
    return _RefreshOutcome(refreshed=True, failure=None, reached_server=True)


def _refuse_other_account(row: Channel, session: Session) -> IntegrationError:
    """A refresh answered for another DID: keep the channel exactly as it was and say so."""
    row.record_event(
        ChannelEvent.Kind.REFRESH_FAILED,
        error_code=errors.AccountMismatch.code,
        detail=f"the server answered with a session for another account ({session.did}); nothing was stored",
    )
    logger.warning("refresh answered for another account did=%s other=%s", row.did, session.did)
    return errors.AccountMismatch(f"The server answered for {session.did} instead of {row.did}.")


def _classify(row: Channel, exc: IntegrationError) -> IntegrationError:
    """Record a failed refresh on the locked row and return the error the caller should see."""
    now = timezone.now()
    # Only the PDS's own verdict (an XRPC error code) ends a session; a bare 401 from a proxy does not.
    session_dead = isinstance(exc, errors.SessionRejected | errors.InvalidCredentials | errors.SessionExpired)
    if session_dead and exc.upstream_error:
        row.wipe_session()
        row.refresh_expires_at = None  # no session is valid until any time now
        row.mark_needs_reconnection(
            errors.SessionExpired.code,
            save_all=True,
            cause=EventNote(ChannelEvent.Kind.REFRESH_FAILED, exc.code, "refresh token rejected"),
        )
        logger.warning("refresh token dead; channel needs reconnection did=%s handle=%s", row.did, row.handle)
        return errors.SessionExpired(status_code=exc.status_code, upstream_error=exc.upstream_error)
    if isinstance(exc, errors.AccountDeactivated | errors.AccountSuspended):
        status = Channel.Status.DEACTIVATED if isinstance(exc, errors.AccountDeactivated) else Channel.Status.SUSPENDED
        row.mark_account_refused(status, exc.code, event_kind=ChannelEvent.Kind.REFRESH_FAILED, save_all=True)
        logger.warning("refresh refused: account %s did=%s handle=%s", row.status, row.did, row.handle)
        return exc
    # Anything else is temporary: tokens stay exactly as they were.
    delay = exc.retry_after or DEFAULT_RETRY_DELAY
    row.mark_degraded(exc.code, now + timedelta(seconds=delay), detail=f"retry after {delay} s")
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
