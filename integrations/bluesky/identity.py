"""Identity resolution: handle → DID → DID document → the account's PDS, for connect, references and the admin.

- A handle resolves by DNS (TXT `_atproto.<handle>`, `did=<DID>`), then over HTTPS
  (`https://<handle>/.well-known/atproto-did`), as the atproto handle spec says. Two different DIDs in the TXT
  records are a conflict: unresolved.
- A `did:plc` document comes from the PLC directory (`INTEGRATIONS_PLC_URL`), a `did:web` one from
  `https://<domain>/.well-known/did.json`. A document is only used when its `id` is the DID asked for.
- A handle is verified only when the DID's document names it back in `alsoKnownAs`.

Every HTTP fetch goes through the outbound guard (`integrations.outbound`) with a size cap and a total deadline
(`TIMEOUT`, connect to last byte). A handle's well-known file and a did:web document are at addresses a user names
(`Reach.PUBLIC`: public https only, always); the PLC directory is configured (`Reach.SERVICE`). A DNS query ends
within `DNS_LIFETIME`, and every lookup ends by the deadline in force (`outbound.deadline`): `lookup_handles` gives
a post's mentions `MENTIONS_DEADLINE` in all, and its threads end with it (the work stops, not only the wait).
Results are cached in the shared cache (documents for an hour, handles for minutes, failures for a minute; a
lookup cut short by an enclosing deadline is not cached). Nothing here raises: a failure is a `Failure`
(unresolved, refused or invalid) that callers can show or ignore.
"""

import contextvars
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import dns.exception
import dns.nameserver
import dns.resolver
import httpx

from integrations import outbound
from integrations.bluesky.client import pds_endpoint_of
from integrations.conf import app_settings
from integrations.throttling import shared_cache

logger = logging.getLogger(__name__)

DOCUMENT_CACHE_SECONDS = 3600
HANDLE_CACHE_SECONDS = 300
FAILURE_CACHE_SECONDS = 60
TIMEOUT = 5.0
DNS_LIFETIME = 3.0
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_WELL_KNOWN_BYTES = 2 * 1024
MAX_REDIRECTS = 2
MAX_PARALLEL_LOOKUPS = 8
MENTIONS_DEADLINE = 8.0  # seconds for all of a post's mentions together
# Where a host's well-known files are: https per the specs (tests serve them over http on a loopback port).
WEB_BASE = "https://{host}"

_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]{1,2048}$")
_HANDLE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_DID_WEB_HOST = re.compile(r"^[a-z0-9.-]+(%3a[0-9]{1,5})?$")

Kind = Literal["unresolved", "refused", "invalid"]


@dataclass(frozen=True)
class Failure:
    """Why something could not be resolved: `unresolved` (no answer, not found, unreachable), `refused` (the
    outbound guard would not call the host) or `invalid` (an answer that is not a usable document or DID)."""

    kind: Kind
    subject: str
    detail: str = ""
    # A timeout, an unreachable server, a 5xx or 429: asking again later may give another answer (a missing
    # record or a 404 is an answer).
    transient: bool = False

    def __str__(self) -> str:
        return f"{self.subject}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class DidDocument:
    did: str
    handles: list[str]  # the `at://` names of `alsoKnownAs`, lower-cased, in the document's order
    pds: str | None  # the `#atproto_pds` service endpoint, normalised; None when it names none


@dataclass(frozen=True)
class Identity:
    did: str
    handle: str | None  # the handle asked about, else the document's first one
    # The handle resolves to the DID and the document names the handle back; None when whether it resolves could
    # not be learnt just now (a timeout, an unreachable server).
    handle_verified: bool | None
    pds: str | None


def is_handle(value: str) -> bool:
    return bool(_HANDLE.match(value))


def _cache_key(kind: str, subject: str) -> str:
    # A refusal under one rule of reach says nothing under another.
    guard = ("g" if outbound.guard_enabled() else "o") + ("l" if outbound.public_urls_on_loopback() else "p")
    return f"integrations:identity:{kind}:{guard}:" + hashlib.sha256(subject.encode()).hexdigest()[:32]


def _out_of_time() -> bool:
    """Whether an enclosing deadline (`outbound.deadline`) has passed: then nothing more is asked, nor cached."""
    return outbound.remaining() == 0


# --- handle → DID ---------------------------------------------------------------------------------------------
def resolver() -> dns.resolver.Resolver:
    """The DNS resolver for TXT lookups: the system's, or `INTEGRATIONS_DNS_NAMESERVERS` ("host" or "host:port")."""
    configured = app_settings.DNS_NAMESERVERS
    if not configured:
        res = dns.resolver.Resolver()
    else:
        res = dns.resolver.Resolver(configure=False)
        servers: list[str | dns.nameserver.Nameserver] = []
        for entry in configured:
            host, _, port = str(entry).rpartition(":") if str(entry).count(":") == 1 else (str(entry), "", "")
            servers.append(dns.nameserver.Do53Nameserver(host, int(port) if port else 53))
        res.nameservers = servers
    res.lifetime = DNS_LIFETIME
    return res


def _dns_did(handle: str) -> str | Failure:
    left = outbound.remaining()
    lifetime = DNS_LIFETIME if left is None else min(DNS_LIFETIME, left)
    if lifetime <= 0:
        return Failure("unresolved", handle, "no time left", transient=True)
    try:
        answer = resolver().resolve(f"_atproto.{handle}", "TXT", lifetime=lifetime)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Failure("unresolved", handle, "no _atproto TXT record")
    except dns.exception.DNSException as exc:  # no server answered (or in time)
        return Failure("unresolved", handle, f"DNS: {type(exc).__name__}", transient=True)
    dids = set()
    for record in answer:
        text = b"".join(record.strings).decode("utf-8", "replace")
        if text.startswith("did="):
            dids.add(text.removeprefix("did="))
    if not dids:
        return Failure("unresolved", handle, "no did= TXT record")
    if len(dids) > 1:
        return Failure("invalid", handle, "TXT records name different DIDs")
    did = dids.pop()
    return did if _DID.match(did) else Failure("invalid", handle, "the TXT record is not a DID")


def _fetch(url: str, max_bytes: int, subject: str, reach: outbound.Reach) -> httpx.Response | Failure:
    try:
        return outbound.get(url, reach=reach, max_redirects=MAX_REDIRECTS, max_bytes=max_bytes, timeout=TIMEOUT)
    except outbound.OutboundRefused as exc:
        return Failure("refused", subject, f"{exc.host}: {exc.reason}")
    except outbound.ResponseTooLarge:
        return Failure("invalid", subject, "the answer is too large")
    except httpx.DecodingError:
        return Failure("invalid", subject, "the answer cannot be decoded")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return Failure("unresolved", subject, f"{type(exc).__name__}", transient=True)


def _well_known_did(handle: str) -> str | Failure:
    url = WEB_BASE.format(host=handle) + "/.well-known/atproto-did"
    response = _fetch(url, MAX_WELL_KNOWN_BYTES, handle, outbound.Reach.PUBLIC)
    if isinstance(response, Failure):
        return response
    if response.status_code != 200:
        transient = response.status_code >= 500 or response.status_code == 429
        return Failure("unresolved", handle, f"well-known answered {response.status_code}", transient=transient)
    did = response.content.decode("utf-8", "replace").strip()
    return did if _DID.match(did) else Failure("invalid", handle, "the well-known answer is not a DID")


def lookup_handle(handle: str, *, fresh: bool = False) -> str | Failure:
    """The DID a handle names (DNS first, then HTTPS), or why not. Cached; `fresh` asks again (and caches that)."""
    handle = handle.strip().lower().lstrip("@")
    if not is_handle(handle):
        return Failure("invalid", handle, "not a handle")
    cache = shared_cache()
    key = _cache_key("handle", handle)
    cached = None if fresh else cache.get(key)
    if cached is not None:
        if cached.get("did"):
            return cached["did"]
        return Failure(cached["kind"], handle, cached.get("detail", ""), transient=cached.get("transient", False))
    if _out_of_time():
        return Failure("unresolved", handle, "no time left", transient=True)
    found = _dns_did(handle)
    if isinstance(found, Failure) and found.kind == "unresolved" and not _out_of_time():
        by_dns = found
        found = _well_known_did(handle)
        if isinstance(found, Failure) and by_dns.transient and not found.transient:
            found = Failure(found.kind, handle, f"{found.detail}; {by_dns.detail}", transient=True)
    if isinstance(found, Failure):
        logger.info("handle not resolved: %s", found)
        if not _out_of_time():
            cache.set(
                key, {"kind": found.kind, "detail": found.detail, "transient": found.transient}, FAILURE_CACHE_SECONDS
            )
    else:
        cache.set(key, {"did": found}, HANDLE_CACHE_SECONDS)
    return found


def lookup_handles(handles: Iterable[str], *, deadline: float = MENTIONS_DEADLINE) -> dict[str, str | Failure]:
    """`lookup_handle` for several handles at once (a post's mentions), in parallel, all within `deadline` seconds
    (and any enclosing deadline); a lookup not done by then is a transient failure. Every lookup runs under that
    deadline itself, so its thread ends with it: nothing keeps working for a post that stopped waiting."""
    unique = list(dict.fromkeys(handles))
    with outbound.deadline(deadline):
        if len(unique) <= 1:
            return {handle: lookup_handle(handle) for handle in unique}
        pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_LOOKUPS, len(unique)), thread_name_prefix="handles")
        try:
            # Each thread runs in a copy of this context: the deadline goes with it.
            futures = {handle: pool.submit(contextvars.copy_context().run, lookup_handle, handle) for handle in unique}
            wait(futures.values(), timeout=outbound.remaining())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return {
        handle: future.result()
        if future.done() and not future.cancelled()
        else Failure("unresolved", handle, "no answer in time", transient=True)
        for handle, future in futures.items()
    }


def resolve_handle(handle: str, *, fresh: bool = False) -> str | None:
    """The DID a handle names, or None when it cannot be resolved (for any reason)."""
    found = lookup_handle(handle, fresh=fresh)
    return None if isinstance(found, Failure) else found


# --- DID → document ---------------------------------------------------------------------------------------------
def _document_url(did: str) -> str | None:
    if did.startswith("did:plc:"):
        return f"{app_settings.PLC_URL.rstrip('/')}/{did}"
    if did.startswith("did:web:"):
        host = did.removeprefix("did:web:").lower()
        if not _DID_WEB_HOST.match(host):  # atproto's did:web names a host only (no path)
            return None
        return WEB_BASE.format(host=host.replace("%3a", ":")) + "/.well-known/did.json"
    return None


def parse_document(did: str, data: Any) -> DidDocument | Failure:
    """A document's handles and PDS, when it is a document about `did`."""
    if not isinstance(data, dict) or data.get("id") != did:
        return Failure("invalid", did, "the document is not about this DID")
    aka = data.get("alsoKnownAs") or []
    handles = [
        name.removeprefix("at://").lower()
        for name in (aka if isinstance(aka, list) else [])
        if isinstance(name, str) and name.startswith("at://")
    ]
    return DidDocument(did=did, handles=handles, pds=pds_endpoint_of(data))


def resolve_did(did: str, *, fresh: bool = False) -> DidDocument | Failure:
    """The DID's document (did:plc or did:web), or why not. Cached; `fresh` fetches it again (and caches that)."""
    url = _document_url(did) if _DID.match(did) else None
    if url is None:
        return Failure("invalid", did, "not a did:plc or did:web DID")
    cache = shared_cache()
    key = _cache_key("did", did)
    cached = None if fresh else cache.get(key)
    if cached is not None:
        if "kind" in cached:
            return Failure(cached["kind"], did, cached.get("detail", ""), transient=cached.get("transient", False))
        return DidDocument(did=did, handles=list(cached["handles"]), pds=cached["pds"])
    if _out_of_time():
        return Failure("unresolved", did, "no time left", transient=True)
    found = _fetch_document(did, url)
    if isinstance(found, Failure):
        logger.info("DID document not resolved: %s", found)
        if _out_of_time():
            return found
        cache.set(
            key, {"kind": found.kind, "detail": found.detail, "transient": found.transient}, FAILURE_CACHE_SECONDS
        )
    else:
        cache.set(key, {"handles": found.handles, "pds": found.pds}, DOCUMENT_CACHE_SECONDS)
    return found


def _fetch_document(did: str, url: str) -> DidDocument | Failure:
    # The PLC directory is configured; a did:web document lives wherever its DID says.
    reach = outbound.Reach.SERVICE if did.startswith("did:plc:") else outbound.Reach.PUBLIC
    response = _fetch(url, MAX_DOCUMENT_BYTES, did, reach)
    if isinstance(response, Failure):
        return response
    if response.status_code != 200:
        transient = response.status_code >= 500 or response.status_code == 429
        return Failure("unresolved", did, f"the document's server answered {response.status_code}", transient=transient)
    try:
        data = json.loads(response.content)
    except ValueError:
        return Failure("invalid", did, "the document is not JSON")
    return parse_document(did, data)


# --- both ------------------------------------------------------------------------------------------------------
def resolve_identity(handle_or_did: str, *, fresh: bool = False) -> Identity | Failure:
    """The DID, handle (and whether it is verified) and PDS of a handle or a DID, or why not. `fresh` skips the
    cache (a refresh must see a handle change or a move now, not within the hour).

    A PDS endpoint the outbound guard would not call (not https, or not at a public address) is refused."""
    found = _resolve_identity(handle_or_did, fresh)
    if isinstance(found, Identity) and found.pds:
        try:
            outbound.check_url(found.pds)
        except outbound.OutboundRefused as exc:
            return Failure("refused", found.did, f"its PDS {exc.host}: {exc.reason}")
        except OSError:
            pass  # a PDS host that does not resolve now is still the one the document names
    return found


def _names(handle: str | None, did: str, fresh: bool) -> bool | None:
    """Whether `handle` resolves to `did`; None when that could not be learnt just now."""
    if handle is None:
        return False
    found = lookup_handle(handle, fresh=fresh)
    if isinstance(found, Failure):
        return None if found.transient else False
    return found == did


def _resolve_identity(handle_or_did: str, fresh: bool) -> Identity | Failure:
    subject = handle_or_did.strip().lstrip("@")
    if subject.startswith("did:"):
        document = resolve_did(subject, fresh=fresh)
        if isinstance(document, Failure):
            return document
        handle = next((name for name in document.handles if is_handle(name)), None)
        return Identity(did=subject, handle=handle, handle_verified=_names(handle, subject, fresh), pds=document.pds)
    handle = subject.lower()
    did = lookup_handle(handle, fresh=fresh)
    if isinstance(did, Failure):
        return did
    document = resolve_did(did, fresh=fresh)
    if isinstance(document, Failure):
        return document
    return Identity(did=did, handle=handle, handle_verified=handle in document.handles, pds=document.pds)


# --- where an account signs in --------------------------------------------------------------------------------------
BLUESKY_ENTRYWAY = "bsky.social"
BLUESKY_PDS_SUFFIX = ".bsky.network"


def _server(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in ("localhost", "::1"):  # one machine, however a local PDS names itself (development and tests)
        host = "127.0.0.1"
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def same_server(one: str, other: str) -> bool:
    """Whether two URLs name the same server (scheme's default port and loopback spellings aside)."""
    return _server(one) == _server(other)


def signs_in_through(service_url: str, pds: str) -> bool:
    """Whether an account hosted on `pds` signs in through `service_url`: the same server, or one of Bluesky's own
    PDS hosts (`*.bsky.network`) behind the `bsky.social` entryway."""
    service, hosted = _server(service_url), _server(pds)
    if service == hosted:
        return True
    return service == (BLUESKY_ENTRYWAY, 443) and hosted[0].endswith(BLUESKY_PDS_SUFFIX)


def sign_in_url(pds: str) -> str:
    """Where an account hosted on `pds` signs in: Bluesky's entryway for Bluesky's own PDS hosts, else the PDS."""
    return f"https://{BLUESKY_ENTRYWAY}" if _server(pds)[0].endswith(BLUESKY_PDS_SUFFIX) else pds
