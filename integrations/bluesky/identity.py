"""Identity resolution: handle → DID → DID document → the account's PDS, for connect, references and the admin.

- A handle resolves by DNS (TXT `_atproto.<handle>`, `did=<DID>`), then over HTTPS
  (`https://<handle>/.well-known/atproto-did`), as the atproto handle spec says. Two different DIDs in the TXT
  records are a conflict: unresolved.
- A `did:plc` document comes from the PLC directory (`INTEGRATIONS_PLC_URL`), a `did:web` one from
  `https://<domain>/.well-known/did.json`. A document is only used when its `id` is the DID asked for.
- A handle is verified only when the DID's document names it back in `alsoKnownAs`.

Every HTTP fetch goes through the outbound guard (`integrations.outbound`) with a short timeout and a size cap.
Results are cached in the shared cache (documents for an hour, handles for minutes, failures for a minute). Nothing
here raises: a failure is a `Failure` (unresolved, refused or invalid) that callers can show or ignore.
"""

import hashlib
import json
import logging
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
from integrations.bluesky import identifiers
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


def _cache_key(kind: str, subject: str) -> str:
    guard = "g" if outbound.guard_enabled() else "o"  # a refusal under the guard says nothing without it
    return f"integrations:identity:{kind}:{guard}:" + hashlib.sha256(subject.encode()).hexdigest()[:32]


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
    try:
        answer = resolver().resolve(f"_atproto.{handle}", "TXT")
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
    return did if identifiers.is_did(did) else Failure("invalid", handle, "the TXT record is not a DID")


def _fetch(url: str, max_bytes: int, subject: str) -> httpx.Response | Failure:
    try:
        return outbound.get(url, max_redirects=MAX_REDIRECTS, max_bytes=max_bytes, timeout=TIMEOUT)
    except outbound.OutboundRefused as exc:
        return Failure("refused", subject, f"{exc.host}: {exc.reason}")
    except outbound.ResponseTooLarge:
        return Failure("invalid", subject, "the answer is too large")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return Failure("unresolved", subject, f"{type(exc).__name__}", transient=True)


def _well_known_did(handle: str) -> str | Failure:
    response = _fetch(WEB_BASE.format(host=handle) + "/.well-known/atproto-did", MAX_WELL_KNOWN_BYTES, handle)
    if isinstance(response, Failure):
        return response
    if response.status_code != 200:
        transient = response.status_code >= 500 or response.status_code == 429
        return Failure("unresolved", handle, f"well-known answered {response.status_code}", transient=transient)
    did = response.content.decode("utf-8", "replace").strip()
    return did if identifiers.is_did(did) else Failure("invalid", handle, "the well-known answer is not a DID")


def lookup_handle(handle: str, *, fresh: bool = False) -> str | Failure:
    """The DID a handle names (DNS first, then HTTPS), or why not. Cached; `fresh` asks again (and caches that)."""
    handle = handle.strip().lower().lstrip("@")
    if not identifiers.is_handle(handle):
        return Failure("invalid", handle, "not a handle")
    cache = shared_cache()
    key = _cache_key("handle", handle)
    cached = None if fresh else cache.get(key)
    if cached is not None:
        if cached.get("did"):
            return cached["did"]
        return Failure(cached["kind"], handle, cached.get("detail", ""), transient=cached.get("transient", False))
    found = _dns_did(handle)
    if isinstance(found, Failure) and found.kind == "unresolved":
        by_dns = found
        found = _well_known_did(handle)
        if isinstance(found, Failure) and by_dns.transient and not found.transient:
            found = Failure(found.kind, handle, f"{found.detail}; {by_dns.detail}", transient=True)
    if isinstance(found, Failure):
        logger.info("handle not resolved: %s", found)
        cache.set(
            key, {"kind": found.kind, "detail": found.detail, "transient": found.transient}, FAILURE_CACHE_SECONDS
        )
    else:
        cache.set(key, {"did": found}, HANDLE_CACHE_SECONDS)
    return found


def lookup_handles(handles: Iterable[str], *, deadline: float = MENTIONS_DEADLINE) -> dict[str, str | Failure]:
    """`lookup_handle` for several handles at once (a post's mentions), in parallel; a lookup still running after
    `deadline` seconds is a transient failure (the post does not wait for a name server that never answers)."""
    unique = list(dict.fromkeys(handles))
    if len(unique) <= 1:
        return {handle: lookup_handle(handle) for handle in unique}
    pool = ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_LOOKUPS, len(unique)), thread_name_prefix="handles")
    try:
        futures = {handle: pool.submit(lookup_handle, handle) for handle in unique}
        wait(futures.values(), timeout=deadline)
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
    host = identifiers.did_web_host(did)
    return None if host is None else WEB_BASE.format(host=host) + "/.well-known/did.json"


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
    url = _document_url(did) if identifiers.is_did(did) else None
    if url is None:
        return Failure("invalid", did, "not a did:plc or did:web DID")
    cache = shared_cache()
    key = _cache_key("did", did)
    cached = None if fresh else cache.get(key)
    if cached is not None:
        if "kind" in cached:
            return Failure(cached["kind"], did, cached.get("detail", ""), transient=cached.get("transient", False))
        return DidDocument(did=did, handles=list(cached["handles"]), pds=cached["pds"])
    found = _fetch_document(did, url)
    if isinstance(found, Failure):
        logger.info("DID document not resolved: %s", found)
        cache.set(
            key, {"kind": found.kind, "detail": found.detail, "transient": found.transient}, FAILURE_CACHE_SECONDS
        )
    else:
        cache.set(key, {"handles": found.handles, "pds": found.pds}, DOCUMENT_CACHE_SECONDS)
    return found


def _fetch_document(did: str, url: str) -> DidDocument | Failure:
    response = _fetch(url, MAX_DOCUMENT_BYTES, did)
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
        handle = next((name for name in document.handles if identifiers.is_handle(name)), None)
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
