"""Identity resolution: handle → DID → DID document → the account's PDS, for connect, references and the admin.

- A handle resolves by DNS (TXT `_atproto.<handle>`, `did=<DID>`), then over HTTPS
  (`https://<handle>/.well-known/atproto-did`), as the atproto handle spec says. Two different DIDs in the TXT
  records are a conflict: unresolved.
- A `did:plc` document comes from the PLC directory (`INTEGRATIONS_PLC_URL`), a `did:web` one from
  `https://<domain>/.well-known/did.json`. A document is only used when its `id` is the DID asked for.
- A handle is verified only when the DID's document names it back in `alsoKnownAs`.
- In development (insecure PDS allowed) with a local BLUESKY_SERVICE_URL (http://, a loopback or private host), a
  handle's well-known lookup that gets no answer at https://<handle> is asked of that server over its own scheme,
  with the handle as Host: a local PDS answers for the handles it hosts, as it would at https://<handle>/ in
  production, so handles on a local PDS can be verified (they do not resolve in public DNS).

Every HTTP fetch goes through the outbound guard (`integrations.security.outbound`) with a size cap and a total deadline
(`TIMEOUT`, connect to last byte). A handle's well-known file and a did:web document are at addresses a user names
(`Reach.PUBLIC`: public https only, always); the PLC directory and the local Service URL are configured
(`Reach.SERVICE`). A DNS query ends within `DNS_LIFETIME`, and every lookup ends by the deadline in force
(`outbound.deadline`): `lookup_handles` gives a post's mentions `MENTIONS_DEADLINE` in all, and its threads end with
it (the work stops, not only the wait). Results are cached in the shared cache (documents for an hour, handles for
minutes, failures for a minute; a lookup cut short by an enclosing deadline is not cached), keyed by the settings
that shape them (PLC directory, DNS servers, the guard, the local server), so a fixed setting is never answered
from before. Nothing here raises: a failure is a `Failure` (unresolved, refused or invalid) whose `detail` says in
words what could not be checked, and whether asking again later may help (`transient`).
"""

import contextvars
import hashlib
import json
import logging
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

import dns.exception
import dns.nameserver
import dns.resolver
import httpx
from django.core.exceptions import ValidationError

from integrations.bluesky.identity import identifiers
from integrations.bluesky.xrpc.client import pds_endpoint_of
from integrations.bluesky.xrpc.servers import normalize_service_url
from integrations.conf import app_settings
from integrations.security import bodies, outbound
from integrations.security.throttling import shared_cache

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
    handle_problem: str = ""  # why the handle is not verified, in words ("" when it is)


def _cache_key(kind: str, subject: str) -> str:
    """The cache key of a lookup, made of what shapes its answer: a refusal under the guard says nothing without it,
    a document from one PLC directory nothing about another, a handle's DID depends on the DNS servers asked and the
    local server in development. A changed setting thus never gets an answer (or a failure) from before it."""
    shaping = ["g" if outbound.guard_enabled() else "o", "l" if outbound.public_urls_on_loopback() else "p", WEB_BASE]
    if kind == "did":
        shaping.append(str(app_settings.PLC_URL))
    else:
        shaping += [repr(list(app_settings.DNS_NAMESERVERS)), local_server() or ""]
    digest = hashlib.sha256("\0".join([*shaping, subject]).encode()).hexdigest()[:32]
    return f"integrations:identity:{kind}:{digest}"


def local_server() -> str | None:
    """In development (insecure PDS allowed), the Service URL of the settings (`BLUESKY_SERVICE_URL`) when it is a
    local server (http://, loopback or private): the one a handle's well-known file is asked of when
    https://<handle> gives no answer. None otherwise. (Settings only: lookups run in worker threads, which must not
    open database connections to read the admin's value.)"""
    if outbound.guard_enabled() or not (configured := app_settings.BLUESKY_SERVICE_URL.strip()):
        return None
    try:
        url = normalize_service_url(configured, allow_insecure=True)
        normalize_service_url(url, allow_insecure=False)
    except ValidationError as exc:
        return url if exc.code in ("insecure", "private_host") else None  # no production PDS: a local one
    return None


_NO_SUCH_NAME = {socket.EAI_NONAME} | ({socket.EAI_NODATA} if hasattr(socket, "EAI_NODATA") else set())


def _unreachable(url: str, exc: Exception) -> tuple[str, bool]:
    """What went wrong fetching `url`, in words, and whether asking again later may help."""
    cause: BaseException | None = exc
    while cause is not None:  # the resolver's verdict, under httpx's and the guard's wrappers
        if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_NAME:
            return f"{httpx.URL(url).host} does not exist (DNS has no such name)", False
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return f"{url} did not answer in time", True
    if isinstance(exc, httpx.TooManyRedirects):
        return f"{url} redirected too often", False
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | ValueError):
        return f"{url} is not an address that can be fetched", False
    return f"{url} could not be reached", True


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
        return Failure("unresolved", handle, f"DNS has no _atproto.{handle} TXT record")
    except dns.exception.Timeout:
        return Failure("unresolved", handle, f"no DNS server answered for _atproto.{handle} in time", transient=True)
    except dns.exception.DNSException:  # no server answered
        return Failure("unresolved", handle, f"no DNS server answered for _atproto.{handle}", transient=True)
    dids = set()
    for record in answer:
        text = b"".join(record.strings).decode("utf-8", "replace")
        if text.startswith("did="):
            dids.add(text.removeprefix("did="))
    if not dids:
        return Failure("unresolved", handle, f"the _atproto.{handle} TXT records hold no did=")
    if len(dids) > 1:
        return Failure("invalid", handle, f"the _atproto.{handle} TXT records name different DIDs")
    did = dids.pop()
    if identifiers.is_did(did):
        return did
    return Failure("invalid", handle, f"the _atproto.{handle} TXT record holds no valid DID")


def _fetch(
    url: str, max_bytes: int, subject: str, reach: outbound.Reach, headers: dict[str, str] | None = None
) -> httpx.Response | Failure:
    try:
        return outbound.get(
            url, reach=reach, max_redirects=MAX_REDIRECTS, max_bytes=max_bytes, timeout=TIMEOUT, headers=headers
        )
    except outbound.OutboundRefused as exc:
        return Failure("refused", subject, f"{exc.host} is not called: {exc.reason}")
    except bodies.ResponseTooLarge:
        return Failure("invalid", subject, f"{url} answered with too much")
    except httpx.DecodingError:
        return Failure("invalid", subject, f"{url} answered with a body that cannot be decoded")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        words, transient = _unreachable(url, exc)
        return Failure("unresolved", subject, words, transient=transient)


WELL_KNOWN_PATH = "/.well-known/atproto-did"


def _well_known_did(handle: str) -> str | Failure:
    url = WEB_BASE.format(host=handle) + WELL_KNOWN_PATH
    response = _fetch(url, MAX_WELL_KNOWN_BYTES, handle, outbound.Reach.PUBLIC)  # a name a user typed
    if isinstance(response, Failure) and (local := local_server()):
        # Development: a handle on the local PDS, asked of that server (the configured one; it answers by Host).
        asked = _fetch(local + WELL_KNOWN_PATH, MAX_WELL_KNOWN_BYTES, handle, outbound.Reach.SERVICE, {"Host": handle})
        if not isinstance(asked, Failure) and asked.status_code == 200:
            url, response = local + WELL_KNOWN_PATH, asked
        elif not isinstance(asked, Failure):
            detail = f"{response.detail}, and the local server {local} does not host it"
            response = Failure("unresolved", handle, detail, transient=response.transient)
    if isinstance(response, Failure):
        return response
    if response.status_code != 200:
        transient = response.status_code >= 500 or response.status_code == 429
        return Failure("unresolved", handle, f"{url} answered {response.status_code}", transient=transient)
    did = response.content.decode("utf-8", "replace").strip()
    return did if identifiers.is_did(did) else Failure("invalid", handle, f"{url} answered with no valid DID")


def lookup_handle(handle: str, *, fresh: bool = False) -> str | Failure:
    """The DID a handle names (DNS first, then HTTPS), or why not. Cached; `fresh` asks again (and caches that)."""
    handle = handle.strip().lower().lstrip("@")
    if not identifiers.is_handle(handle):
        return Failure("invalid", handle, "it is not a handle")
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
        if isinstance(found, Failure):  # say both; a DNS server that did not answer may still know it
            transient = found.transient or by_dns.transient
            found = Failure(found.kind, handle, f"{by_dns.detail}; {found.detail}", transient=transient)
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
        else Failure("unresolved", handle, "its lookup took too long", transient=True)
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
        return Failure("invalid", did, "its DID document is about another DID")
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
        return Failure("invalid", did, "it is not a did:plc or did:web DID")
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
        return Failure("unresolved", did, f"{url} answered {response.status_code}", transient=transient)
    try:
        data = json.loads(response.content)
    except ValueError:
        return Failure("invalid", did, f"{url} answered with no JSON document")
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


def _names(handle: str | None, did: str, fresh: bool) -> tuple[bool | None, str]:
    """Whether `handle` resolves to `did` (None when that could not be learnt just now), and if not, why."""
    if handle is None:
        return False, "its DID document names no handle"
    found = lookup_handle(handle, fresh=fresh)
    if isinstance(found, Failure):
        return (None if found.transient else False), found.detail
    if found != did:
        return False, f"{handle} names another DID ({found})"
    return True, ""


def _resolve_identity(handle_or_did: str, fresh: bool) -> Identity | Failure:
    subject = handle_or_did.strip().lstrip("@")
    if subject.startswith("did:"):
        document = resolve_did(subject, fresh=fresh)
        if isinstance(document, Failure):
            return document
        handle = next((name for name in document.handles if identifiers.is_handle(name)), None)
        verified, problem = _names(handle, subject, fresh)
        return Identity(subject, handle, verified, document.pds, problem)
    handle = subject.lower()
    did = lookup_handle(handle, fresh=fresh)
    if isinstance(did, Failure):
        return did
    document = resolve_did(did, fresh=fresh)
    if isinstance(document, Failure):
        return document
    if handle in document.handles:
        return Identity(did=did, handle=handle, handle_verified=True, pds=document.pds)
    problem = f"the DID document of {did} does not name {handle}"
    return Identity(did=did, handle=handle, handle_verified=False, pds=document.pds, handle_problem=problem)
