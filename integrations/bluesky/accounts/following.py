"""Following a channel's identity: after a sign-in and every refresh that reached the server, the account's DID
document is read again; the handle shown is the one it verifies, and a PDS that moved is followed (or, when the
session cannot go there, the channel asks for a reconnection that says where the account lives now)."""

import logging
from dataclasses import dataclass

from django.db import transaction

from integrations.bluesky.accounts.connection import copy_session_state, revoke_quietly
from integrations.bluesky.accounts.health import announce_health, health_state
from integrations.bluesky.identity import resolution
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import MAX_ENDPOINT_LENGTH, PdsClient
from integrations.bluesky.xrpc.servers import same_server, signs_in_through
from integrations.models import Channel, ChannelEvent, EventNote

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _IdentityPlan:
    handle: str
    handle_verified: bool | None
    pds_endpoint: str
    moved_to: str  # "" unless the account moved where the session cannot follow
    changes: list[str]  # what the event log says (a handle confirmed as before is no news)


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
    return _follow_under_row_lock(channel, before, found, suspect_move)


def _follow_under_row_lock(
    channel: Channel, before: Channel, found: resolution.Identity, suspect_move: bool
) -> errors.AccountMoved | None:
    """Plan again on the locked row and write the plan; sign the old session out when the account moved away."""
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
        _apply(row, plan)
        announce_health(row, old_state)
    copy_session_state(row, channel)
    if not plan.moved_to:
        return None
    if refresh_jwt:
        revoke_quietly(PdsClient(old_url), refresh_jwt, row.did)
    return errors.AccountMoved(row.handle, plan.moved_to)


def _apply(row: Channel, plan: _IdentityPlan) -> None:
    """Write `plan` on the locked row and record it."""
    row.handle, row.handle_verified, row.pds_endpoint = plan.handle, plan.handle_verified, plan.pds_endpoint
    changed = EventNote(ChannelEvent.Kind.IDENTITY_CHANGED, detail="; ".join(plan.changes)[:500])
    if plan.moved_to:
        row.wipe_session()
        row.mark_needs_reconnection(errors.AccountMoved.code, save_all=True, cause=changed if plan.changes else None)
        logger.warning("account moved to %s; channel needs reconnection did=%s", plan.moved_to, row.did)
        return
    row.save()
    if plan.changes:
        row.record_event(changed.kind, detail=changed.detail)


def _identity_plan(row: Channel, found: resolution.Identity, suspect_move: bool) -> _IdentityPlan | None:
    """What following `found` changes on `row` (see `follow_identity`), or None when nothing."""
    handle, verified, changes = _handle_change(row, found)
    pds_endpoint, moved_to, pds_change = _pds_change(row, found, suspect_move)
    if pds_change:
        changes.append(pds_change)
    if not moved_to and (handle, verified, pds_endpoint) == (row.handle, row.handle_verified, row.pds_endpoint):
        return None
    return _IdentityPlan(handle, verified, pds_endpoint, moved_to, changes)


def _handle_change(row: Channel, found: resolution.Identity) -> tuple[str, bool | None, list[str]]:
    """The handle and its verification after following `found`, and what the event log says of them."""
    changes = []
    verified = row.handle_verified if found.handle_verified is None else found.handle_verified
    handle = found.handle or row.handle
    if handle != row.handle:
        changes.append(f"handle @{row.handle} is now @{handle}")
    if verified is False and row.handle_verified is not False:
        changes.append(f"@{handle} is not verified (it does not resolve to {row.did})")
    return handle, verified, changes


def _pds_change(row: Channel, found: resolution.Identity, suspect_move: bool) -> tuple[str, str, str]:
    """The PDS endpoint after following `found`, the server the account moved to ("" when none) and what the event
    log says ("" when nothing)."""
    pds = found.pds if found.pds and len(found.pds) <= MAX_ENDPOINT_LENGTH else None
    if pds and signs_in_through(row.service_url, pds):
        if not same_server(pds, row.pds_url):
            return pds, "", f"its PDS is now {pds}"
    elif pds and suspect_move and row.status != Channel.Status.DISCONNECTED:
        return pds, pds, f"the account moved to {pds}; the session on {row.pds_url} was signed out"
    return row.pds_endpoint, "", ""
