"""Posts a new post replies to or quotes: a bsky.app address or an at:// URI, turned into strong references.

The referenced record's CID comes from `com.atproto.repo.getRecord` on the PDS that hosts the repository (this
works without an AppView): the channel's own PDS when it hosts it, else the PDS named by the repository's DID
document, fetched through the outbound guard (`integrations.outbound`) as a server the user's input leads to
(`Reach.PUBLIC`: public https only, whatever `INTEGRATIONS_ALLOW_INSECURE_PDS` says).
"""

import re
from dataclasses import dataclass
from typing import Any

from integrations import outbound
from integrations.bluesky import errors, identifiers, identity, lifecycle
from integrations.bluesky.client import PdsClient
from integrations.bluesky.plans import POST_COLLECTION, StrongRef
from integrations.models import Channel

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


def resolve(channel: Channel, address: str) -> Reference:
    """The strong reference (and thread root) of the post at `address`. Raises InvalidReference."""
    actor, rkey = parse(address)
    did = actor if identifiers.is_did(actor) else _handle_did(channel, identifiers.normalize_handle(actor))
    found = _read(channel, did, rkey)
    if found is None:
        raise errors.InvalidReference(f"There is no post at {address[:200]!r}.")
    cid, value = found
    ref = StrongRef(f"at://{did}/{POST_COLLECTION}/{rkey}", cid)
    root = _root_of(value) or ref
    return Reference(ref=ref, root=root)


def _handle_did(channel: Channel, handle: str) -> str:
    try:
        return lifecycle.call(channel, lambda client, token: client.resolve_handle(handle))
    except errors.RequestRejected as exc:
        raise errors.InvalidReference(f"The handle @{handle} does not resolve to an account.") from exc


def _read(channel: Channel, did: str, rkey: str) -> tuple[str, Any] | None:
    found = lifecycle.call(channel, lambda client, token: client.get_record(token, did, POST_COLLECTION, rkey))
    if found is not None or did == channel.did:
        return found
    endpoint = _pds_of(did)
    if endpoint is None or endpoint.rstrip("/") == channel.pds_url.rstrip("/"):
        return None
    # A public read on the repo's own PDS: a server the user's reference leads to, so public addresses only.
    return PdsClient(endpoint, reach=outbound.Reach.PUBLIC).get_record(None, did, POST_COLLECTION, rkey)


def _pds_of(did: str) -> str | None:
    """The PDS that hosts `did`'s repository, from its DID document (`identity.resolve_did`)."""
    document = identity.resolve_did(did)
    if isinstance(document, identity.Failure):
        if document.kind == "unresolved":  # no document to be found: no post to be found either
            return None
        raise errors.InvalidReference(f"The account {did} could not be looked up ({document.kind}).")
    return document.pds


def _root_of(value: Any) -> StrongRef | None:
    try:
        root = value["reply"]["root"]
        return StrongRef(str(root["uri"]), str(root["cid"]))
    except (KeyError, TypeError):
        return None
