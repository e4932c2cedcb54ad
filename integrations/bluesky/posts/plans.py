"""A post's publishing plan, fixed when the post is accepted: record keys, records and their CIDs.

Exactly once rests on this: every attempt writes the same records under the same keys, so a retry after a lost
answer either finds its records already there (with the CIDs computed here) or writes them, never a second copy.
The CIDs are computed locally the way the PDS computes them (DAG-CBOR, sha-256, CIDv1), so each reply of a thread
can name its parent inside one `applyWrites` batch, and blobs are referenced by the CID of their bytes before they
are uploaded.
"""

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import libipld

from integrations.bluesky.identity.identifiers import TID_ALPHABET, format_datetime

POST_COLLECTION = "app.bsky.feed.post"
_DAG_CBOR, _RAW, _SHA256 = 0x71, 0x55, 0x12


def tid(microseconds: int, clock_id: int) -> str:
    """A record key in the TID format: 53 bits of microseconds since the epoch and a 10-bit clock id, written as
    13 characters of the sortable base32 alphabet (`identifiers.is_tid`)."""
    if not 0 <= microseconds < 2**53 or not 0 <= clock_id < 2**10:
        raise ValueError("a TID holds 53 bits of microseconds and a 10-bit clock id")
    value = (microseconds << 10) | clock_id
    return "".join(TID_ALPHABET[(value >> (5 * shift)) & 31] for shift in range(12, -1, -1))


def tid_time(key: str) -> datetime:
    """When a TID says it was made (for tests and for reading keys back)."""
    value = 0
    for char in key:
        value = value * 32 + TID_ALPHABET.index(char)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value >> 10)


# A post's keys must differ from every other post's in its repository, whatever their ids and times (posts are often
# scheduled for the same moment), and say when the post was made (clients and the channel's own feed order a
# repository by key). No function of the post's id and time alone can do both in a TID's 63 bits: keeping the time to
# the microsecond leaves 10 bits to tell posts apart. So the keys are the post's createdAt to the microsecond (part i
# a microsecond later) with a 10-bit clock id, the first of the candidates that no post of the repository planned yet
# (`taken`, read from the database under a lock on the repository: `publishing`): the post's id modulo 1,024, then
# the next clock ids, and past all 1,024 the thread's length later. With nothing near its time taken, a post's key is
# its createdAt exactly. The keys are chosen once, when the post is planned (and again only while it was never sent).
MAX_PLANNED_PARTS = 1000
_CLOCK_IDS = 1024


def part_keys(post_id: int, created_at: datetime, count: int, taken: Collection[str] = frozenset()) -> list[str]:
    """The record keys of a post's parts: increasing in the thread's order, none of them in `taken` (the keys other
    posts of the repository planned), the same for the same post, time and `taken`."""
    if not 1 <= count <= MAX_PLANNED_PARTS:
        raise ValueError(f"a post has 1 to {MAX_PLANNED_PARTS:,} parts")
    base = int((created_at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    taken = taken if isinstance(taken, set | frozenset) else set(taken)
    candidate = 0
    while True:
        clock = (post_id + candidate) % _CLOCK_IDS
        start = base + (candidate // _CLOCK_IDS) * count
        keys = [tid(start + index, clock) for index in range(count)]
        if taken.isdisjoint(keys):
            return keys
        candidate += 1


def _cid(codec: int, data: bytes) -> str:
    return libipld.encode_cid(bytes([1, codec, _SHA256, 32]) + hashlib.sha256(data).digest())


def blob_cid(data: bytes) -> str:
    """The CID a PDS gives a blob: CIDv1, raw codec, sha-256 of its bytes."""
    return _cid(_RAW, data)


def _as_ipld(value: Any) -> Any:
    """The record's JSON form turned into its IPLD data model: `{"$link": cid}` becomes a CID link."""
    if isinstance(value, dict):
        if set(value) == {"$link"}:
            return libipld.decode_multibase(value["$link"])[1]
        return {key: _as_ipld(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_ipld(item) for item in value]
    return value


def record_cid(record: dict[str, Any]) -> str:
    """The CID a PDS gives a record: CIDv1, DAG-CBOR codec, sha-256 of its canonical encoding."""
    return _cid(_DAG_CBOR, libipld.encode_dag_cbor(_as_ipld(record)))


def at_uri(did: str, rkey: str, collection: str = POST_COLLECTION) -> str:
    return f"at://{did}/{collection}/{rkey}"


def web_url(uri: str) -> str:
    """A published post's bsky.app address (`at://did/app.bsky.feed.post/rkey` -> https://bsky.app/...), or ""."""
    if not uri:
        return ""
    did, _, rkey = uri.removeprefix("at://").partition(f"/{POST_COLLECTION}/")
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def iso_time(moment: datetime) -> str:
    """`createdAt` as the lexicon wants it: UTC, a four-digit year, milliseconds, `Z`."""
    return format_datetime(moment)


@dataclass(frozen=True)
class StrongRef:
    uri: str
    cid: str

    def as_record(self) -> dict[str, str]:
        return {"uri": self.uri, "cid": self.cid}


@dataclass(frozen=True)
class PlannedImage:
    """An image as it will be sent: its blob (CID of the prepared bytes), alt text and pixel size."""

    cid: str
    mime: str
    size: int
    width: int
    height: int
    alt: str
    media_id: int | None = None  # the upload it comes from (not part of the record)

    def blob(self) -> dict[str, Any]:
        return {"$type": "blob", "ref": {"$link": self.cid}, "mimeType": self.mime, "size": self.size}

    def as_record(self) -> dict[str, Any]:
        return {
            "alt": self.alt,
            "image": self.blob(),
            "aspectRatio": {"width": self.width, "height": self.height},
        }


@dataclass(frozen=True)
class ExternalCard:
    """A link card (app.bsky.embed.external): the link, its title and description, and its thumbnail's blob."""

    uri: str
    title: str
    description: str
    thumb: PlannedImage | None = None

    def as_record(self) -> dict[str, Any]:
        external: dict[str, Any] = {"uri": self.uri, "title": self.title, "description": self.description}
        if self.thumb is not None:
            external["thumb"] = self.thumb.blob()
        return {"$type": "app.bsky.embed.external", "external": external}


@dataclass(frozen=True)
class PartInput:
    """What one part says: text (as it will be sent), facets in the record's shape, langs, images and a link card
    (shown only when the part has no images and no quote: a record has one embed)."""

    text: str
    facets: list[dict[str, Any]] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    images: list[PlannedImage] = field(default_factory=list)
    external: ExternalCard | None = None


@dataclass(frozen=True)
class PlannedPart:
    rkey: str
    uri: str
    record: dict[str, Any]
    cid: str


def _embed(
    images: Sequence[PlannedImage], quote: StrongRef | None, external: ExternalCard | None = None
) -> dict[str, Any] | None:
    """The record's one embed: images and a quote together, or either; a link card only when there is neither
    (what bsky.app does: attaching images or a quote replaces the card)."""
    media = {"$type": "app.bsky.embed.images", "images": [image.as_record() for image in images]} if images else None
    if quote and media:
        return {"$type": "app.bsky.embed.recordWithMedia", "record": {"record": quote.as_record()}, "media": media}
    if quote:
        return {"$type": "app.bsky.embed.record", "record": quote.as_record()}
    if media is None and external is not None:
        return external.as_record()
    return media


def plan_thread(
    *,
    did: str,
    keys: Sequence[str],
    created_at: datetime,
    parts: Sequence[PartInput],
    reply_to: tuple[StrongRef, StrongRef] | None = None,
    quote: StrongRef | None = None,
) -> list[PlannedPart]:
    """The records of a post, in order: each part replies to the one before, the first one to `reply_to`
    ((root, parent) of the post replied to) when given; the quote goes on the first part."""
    if len(keys) != len(parts):
        raise ValueError("one record key per part")
    planned: list[PlannedPart] = []
    root, parent = reply_to if reply_to else (None, None)
    for index, (key, part) in enumerate(zip(keys, parts, strict=True)):
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": part.text,
            # Each part a millisecond after the one before, so clients order the thread as written.
            "createdAt": iso_time(created_at + timedelta(milliseconds=index)),
        }
        if part.langs:
            record["langs"] = list(part.langs)
        if part.facets:
            record["facets"] = list(part.facets)
        embed = _embed(part.images, quote if index == 0 else None, part.external)
        if embed:
            record["embed"] = embed
        if parent is not None and root is not None:
            record["reply"] = {"root": root.as_record(), "parent": parent.as_record()}
        uri = at_uri(did, key)
        this = PlannedPart(rkey=key, uri=uri, record=record, cid=record_cid(record))
        planned.append(this)
        parent = StrongRef(this.uri, this.cid)
        root = root or parent
    return planned
