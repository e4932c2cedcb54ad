"""Posts a new post replies to or quotes: a bsky.app address or an at:// URI, turned into strong references.

The referenced record's CID comes from `com.atproto.repo.getRecord` on the PDS that hosts the repository (this
works without an AppView): the channel's own PDS when it hosts it, else the PDS named by the repository's DID
document, fetched through the outbound guard (`integrations.outbound`) as a server the user's input leads to
(`Reach.PUBLIC`: public https only, whatever `INTEGRATIONS_ALLOW_INSECURE_PDS` says).
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations import outbound
from integrations.bluesky import errors, identifiers, identity, lifecycle
from integrations.bluesky.client import PdsClient, clean_text
from integrations.bluesky.feed import parse_time
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
    document = identity.resolve_did(did)
    return "" if isinstance(document, identity.Failure) or not document.handles else document.handles[0]


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
