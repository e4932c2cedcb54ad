"""Posts a new post replies to or quotes: a bsky.app address or an at:// URI, turned into strong references.

The referenced record (its CID, and its thread's root) is read with `com.atproto.repo.getRecord` from the PDS that
hosts its repository, which needs no AppView: the channel's own PDS (through its session) for the channel's own
posts and for accounts its DID document places there; any other account's PDS as its DID document (`identity`:
PLC directory or did:web) names it. That PDS is a server the user's input leads to, so it is called through the
outbound guard (`integrations.security.outbound`) as `Reach.PUBLIC`: public https only, whatever
`INTEGRATIONS_ALLOW_INSECURE_PDS` says (loopback only, in tests). A handle is asked of the channel's PDS, and
resolved here (DNS, then HTTPS) when that PDS cannot.

What goes wrong is said in words: an account, handle or post that is not there, or a server that cannot be used, is
`InvalidReference` (asking again will not help); only a lookup or an author's PDS that failed for now (unreachable,
timed out, a 5xx, a rate limit) is a temporary error that says "try again".
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations.bluesky.accounts import door
from integrations.bluesky.accounts.feed import parse_time
from integrations.bluesky.identity import identifiers, resolution
from integrations.bluesky.posts.plans import POST_COLLECTION, StrongRef
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import PdsClient, clean_text
from integrations.bluesky.xrpc.servers import same_server
from integrations.conf import app_settings
from integrations.models import Channel
from integrations.security import outbound

# The address bsky.app shows for a post; its parts are checked with the atproto syntax rules (`identifiers`).
_BSKY_APP = re.compile(r"https://(?:www\.)?bsky\.app/profile/(?P<actor>[^/?#]+)/post/(?P<rkey>[^/?#]+)/?")


@dataclass(frozen=True)
class Reference:
    """A referenced post: its strong reference, and the root of its thread (itself when it is not a reply)."""

    ref: StrongRef
    root: StrongRef


def parse(address: str) -> tuple[str, str]:
    """(actor, rkey) of a post address: `https://bsky.app/profile/<handle or DID>/post/<rkey>` or
    `at://<DID or handle>/app.bsky.feed.post/<rkey>`. Raises InvalidReference."""
    address = (address or "").strip()
    if match := _BSKY_APP.fullmatch(address):
        actor, collection, rkey = match["actor"], POST_COLLECTION, match["rkey"]
    elif uri := identifiers.parse_at_uri(address):
        actor, collection, rkey = uri.authority, uri.collection, uri.rkey
    else:
        actor = collection = rkey = None
    if collection != POST_COLLECTION or not identifiers.is_at_identifier(actor) or not identifiers.is_record_key(rkey):
        raise errors.InvalidReference(f"{address[:200]!r} is not the address of a Bluesky post.")
    return actor, rkey


@dataclass(frozen=True)
class Target:
    """A post to reply to or quote as its author wrote it, for a preview: who (`handle` as the address or the DID
    document names it, else ""), what (its text, whether it has images) and when."""

    reference: Reference
    did: str
    handle: str
    text: str
    created_at: datetime | None
    has_images: bool


def resolve(channel: Channel, address: str) -> Reference:
    """The strong reference (and thread root) of the post at `address`. Raises InvalidReference."""
    return _find(channel, address)[0]


def look_up(channel: Channel, address: str) -> Target:
    """The post at `address` with what a preview shows of it (its author, text and time), read as `resolve` reads
    it. Raises InvalidReference."""
    reference, handle, value = _find(channel, address)
    did = reference.ref.uri.removeprefix("at://").split("/", 1)[0]
    embed = value.get("embed") if isinstance(value.get("embed"), dict) else {}
    media = embed.get("media") if isinstance(embed.get("media"), dict) else {}
    return Target(
        reference=reference,
        did=did,
        handle=handle or _handle_of(did),
        text=clean_text(value.get("text"))[:3000],
        created_at=parse_time(value.get("createdAt")),
        has_images="app.bsky.embed.images" in (embed.get("$type"), media.get("$type")),
    )


def _find(channel: Channel, address: str) -> tuple[Reference, str, dict[str, Any]]:
    """The post at `address`: its reference, the handle the address named ("" for a DID) and its record."""
    actor, rkey = parse(address)
    handle = "" if identifiers.is_did(actor) else identifiers.normalize_handle(actor)
    did = _handle_did(channel, handle) if handle else actor
    found = _read(channel, did, rkey)
    if found is None:
        raise errors.InvalidReference(f"There is no post at {address[:200]!r}.")
    cid, value = found
    ref = StrongRef(f"at://{did}/{POST_COLLECTION}/{rkey}", cid)
    value = value if isinstance(value, dict) else {}
    return Reference(ref=ref, root=_root_of(value) or ref), handle, value


def _handle_of(did: str) -> str:
    """The handle a DID document names first ("" when it names none or cannot be read: the DID is shown)."""
    document = resolution.resolve_did(did)
    return "" if isinstance(document, resolution.Failure) or not document.handles else document.handles[0]


def _handle_did(channel: Channel, handle: str) -> str:
    """The DID `handle` names: the channel's PDS's answer, else (a PDS need not resolve handles it does not host, and
    one without an AppView may fail to) our own lookup."""
    try:
        return door.call(channel, lambda client, token: client.resolve_handle(handle))
    except (errors.RequestRejected, errors.PdsServerError):
        pass
    found = resolution.lookup_handle(handle)
    if not isinstance(found, resolution.Failure):
        return found
    if found.transient:
        raise _for_now(f"The handle @{handle} could not be looked up just now ({found.detail}).", f"https://{handle}")
    raise errors.InvalidReference(f"The handle @{handle} does not resolve to an account ({found.detail}).")


def _read(channel: Channel, did: str, rkey: str) -> tuple[str, Any] | None:
    """The record's CID and value from the PDS that hosts `did`'s repository, or None when it holds no such record."""
    if did != channel.did:
        pds = _pds_of(did)
        if not same_server(pds, channel.pds_url):
            return _read_elsewhere(pds, did, rkey)
    return door.call(channel, lambda client, token: client.get_record(token, did, POST_COLLECTION, rkey))


def _read_elsewhere(pds: str, did: str, rkey: str) -> tuple[str, Any] | None:
    """A public read on another account's PDS, which its own DID document names: public addresses only."""
    try:
        return PdsClient(pds, reach=outbound.Reach.PUBLIC).get_record(None, did, POST_COLLECTION, rkey)
    except errors.AddressRefused as exc:
        # The same words whatever listens there: the answer must tell nothing about a private network.
        reason = "is not a public https address, so it was not called"
        raise errors.InvalidReference(f"The server of the account {did}, {pds}, {reason}.") from exc
    except errors.InvalidResponse as exc:
        reason = f"did not answer like a Bluesky PDS ({exc.detail})"
        raise errors.InvalidReference(f"The server of the account {did}, {pds}, {reason}.") from exc
    except errors.RateLimited as exc:  # its own words are about sign-ins
        error = errors.PdsServerError(exc.detail, status_code=exc.status_code, retry_after=exc.retry_after)
        error.url = pds
        raise error from exc
    except errors.TemporaryError:
        raise  # unreachable, timed out, a 5xx: its words name that server and say to try again
    except errors.BlueskyError as exc:
        # A redirect, a refusal, an answer about sessions: its words would be about the channel's own server.
        reason = f"refused to give the post ({exc.upstream_error or exc.code}: {exc.detail or exc.status_code})"
        raise errors.InvalidReference(f"The server of the account {did}, {pds}, {reason}.") from exc


def _pds_of(did: str) -> str:
    """The PDS that hosts `did`'s repository, as its DID document names it (`resolution.resolve_did`).

    Raises InvalidReference when there is no such account or its document names no PDS, or a temporary error
    (`PdsUnreachable`) when it could not be looked up just now."""
    document = resolution.resolve_did(did)
    if isinstance(document, resolution.Failure):
        if document.transient:
            raise _for_now(f"The account {did} could not be looked up just now ({document.detail}).", _lookup_of(did))
        if document.kind == "unresolved":
            raise errors.InvalidReference(f"The account {did} was not found ({document.detail}).")
        raise errors.InvalidReference(f"The account {did} cannot be looked up ({document.detail}).")
    if document.pds is None:
        raise errors.InvalidReference(f"The account {did} has no server for its posts: its DID document names none.")
    return document.pds


def _lookup_of(did: str) -> str:
    """The server a DID's document is asked of (for the words of a failed lookup)."""
    if did.startswith("did:web:"):
        return f"https://{identifiers.did_web_host(did)}"
    return str(app_settings.PLC_URL).rstrip("/")


def _for_now(detail: str, server: str) -> errors.PdsUnreachable:
    """A lookup that failed for now (no answer, a 5xx): asking again later may work."""
    error = errors.PdsUnreachable(detail)
    error.url = server
    return error


def _root_of(value: Any) -> StrongRef | None:
    try:
        root = value["reply"]["root"]
        return StrongRef(str(root["uri"]), str(root["cid"]))
    except (KeyError, TypeError):
        return None
