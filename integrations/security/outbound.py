"""Every outbound HTTP request of the app goes through here: the XRPC client, Test connection, link cards and
identity resolution.

**What a request may reach** depends on who chose where it goes (`Reach`):

- `Reach.SERVICE`: the configured PDS (Service URL), the PLC directory and a channel's own PDS. While
  `INTEGRATIONS_ALLOW_INSECURE_PDS` is off (production) they are held to public https targets; that setting (on with
  DEBUG, or for a PDS on a private network) lets these, and only these, be plain http on any address.
- `Reach.PUBLIC`: every URL a user names, directly or not: link-card pages and their images, a handle's
  `/.well-known/atproto-did`, a `did:web` document. Always public https targets, whatever any setting says. There is
  no switch a deployment or a user could turn to let them read internal pages.

A checked request resolves its host once per connection; every address it resolves to must be allowed
(`is_public_address`: the IANA special-purpose registries in full), and the socket is opened to the address that was
checked, so DNS cannot answer differently the second time (rebinding); TLS still checks the certificate against the
host name. Port 0 is refused; redirects are never followed implicitly (`get` follows them by hand, checking every
hop); a refusal is an `OutboundRefused` whose words name the host and never depend on whether anything listens there.

**Tests** serve pages and handles on loopback. `loopback_only_for_tests()` (a context manager; the test suite's
conftest holds it open for the whole run, and `tests.support.localidentity.identities_on` for the benchmarks) makes
`Reach.PUBLIC` mean "loopback addresses (127.0.0.0/8, ::1) over http or https, and nothing else": a test that runs
inside it can be sure no link card or handle look-up leaves the machine. It is a module switch, not a setting:
production code never turns it on.

**Deadlines.** Each request has a total deadline (connect, TLS, sending, headers and body together), on top of the
per-operation timeout: `get(timeout=...)` is the total of one fetch (every redirect included), a client from
`make_client` gives each request `3 * timeout`, and `deadline(seconds)` sets one for everything inside it (the
stricter one wins). A page that drips one byte every two seconds is cut at its deadline. Name resolution is the
system resolver's (bounded by its own `timeout`/`attempts`); the deadline is checked as soon as it answers.

**Bodies.** Requests ask for `Accept-Encoding: gzip, deflate` and a response may use one of those, once (or none):
any other coding (br, zstd, `gzip, gzip`, ...) is refused as `UnsupportedEncoding`. Bodies are decoded here, in
steps of 64 KiB, counting the decoded bytes (and the bytes on the wire) as they stream; a body over its cap stops
there (`ResponseTooLarge`): a compressed page never costs more memory than the cap it is read under.

This module is generic: it must not import a provider package.
"""

import contextvars
import enum
import ipaddress
import socket
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from integrations.conf import app_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = "Skyport (Django)"
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 1_000_000
# What a client from `make_client` (the XRPC client) reads of one answer at most: a page of records is kilobytes.
CLIENT_MAX_BYTES = 16_000_000
# A client's requests each end within this many times its per-operation timeout (an uploadBlob on a slow link).
CLIENT_DEADLINE_FACTOR = 3
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own defaults
ACCEPT_ENCODING = "gzip, deflate"
DECODE_STEP = 64 * 1024  # decoded bytes produced at most per step, whatever one compressed chunk expands to

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are the IPv4 address
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # the only IPv6 space IANA allocates for global unicast

# The IANA IPv4 Special-Purpose Address Registry, in full (whether or not an entry is "globally reachable": none is
# a web page), and multicast. https://www.iana.org/assignments/iana-ipv4-special-registry
_SPECIAL_IPV4 = tuple(
    ipaddress.ip_network(block)
    for block in (
        "0.0.0.0/8",  # "this network" (RFC 791), with 0.0.0.0/32
        "10.0.0.0/8",  # private use (RFC 1918)
        "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback (RFC 1122)
        "169.254.0.0/16",  # link-local, cloud metadata (RFC 3927)
        "172.16.0.0/12",  # private use (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890), with .0/29, .8, .9, .10, .170, .171
        "192.0.2.0/24",  # documentation, TEST-NET-1 (RFC 5737)
        "192.31.196.0/24",  # AS112-v4 (RFC 7535)
        "192.52.193.0/24",  # AMT (RFC 7450)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
        "192.168.0.0/16",  # private use (RFC 1918)
        "192.175.48.0/24",  # direct delegation AS112 service (RFC 7534)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation, TEST-NET-2 (RFC 5737)
        "203.0.113.0/24",  # documentation, TEST-NET-3 (RFC 5737)
        "224.0.0.0/4",  # multicast (RFC 5771): not one host
        "240.0.0.0/4",  # reserved (RFC 1112), with 255.255.255.255/32 limited broadcast (RFC 919)
    )
)
# The IANA IPv6 Special-Purpose Address Registry, in full, and what else is not one public host: multicast, the
# deprecated site-local and IPv4-compatible forms. https://www.iana.org/assignments/iana-ipv6-special-registry
# (64:ff9b::/96, NAT64, is judged by the IPv4 address it carries.)
_SPECIAL_IPV6 = tuple(
    ipaddress.ip_network(block)
    for block in (
        "::/128",  # unspecified (RFC 4291)
        "::1/128",  # loopback (RFC 4291)
        "::/96",  # deprecated IPv4-compatible addresses (RFC 4291), routed to the IPv4 address by some stacks
        "::ffff:0:0/96",  # IPv4-mapped addresses (RFC 4291): never a DNS answer for a public host
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "100:0:0:1::/64",  # dummy IPv6 prefix (RFC 9780)
        "2001::/23",  # IETF protocol assignments (RFC 2928): Teredo 2001::/32, 2001:1::1-3, benchmarking
        # 2001:2::/48, AMT 2001:3::/32, AS112 2001:4:112::/48, ORCHID 2001:10::/28, ORCHIDv2 2001:20::/28,
        # DRIP 2001:30::/28
        "2001:db8::/32",  # documentation (RFC 3849)
        "2002::/16",  # 6to4 (RFC 3056): tunnels to an IPv4 address of its own
        "2620:4f:8000::/48",  # direct delegation AS112 service (RFC 7534)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # segment routing SIDs (RFC 9602)
        "fc00::/7",  # unique local (RFC 4193)
        "fe80::/10",  # link-local unicast (RFC 4291)
        "fec0::/10",  # deprecated site-local (RFC 3879)
        "ff00::/8",  # multicast (RFC 4291): not one host
    )
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class Reach(enum.Enum):
    """Who chose where a request goes, which decides what it may reach (see the module's docstring)."""

    SERVICE = "service"  # the configured PDS, the PLC directory, a channel's own PDS
    PUBLIC = "public"  # anything a user names: link-card pages and images, handles' well-known, did:web


class OutboundRefused(Exception):
    """A request was not sent because its target is not allowed; `host` is the host that was refused."""

    def __init__(self, host: str, reason: str = "not a public address") -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class ResponseTooLarge(httpx.DecodingError):
    """A response body (decoded, or on the wire) was longer than the caller accepts."""


class UnsupportedEncoding(httpx.DecodingError):
    """A response used a content coding we did not ask for (anything but one layer of gzip or deflate)."""


@dataclass
class Meter:
    """Bytes received on the wire by the requests it is given to (see `get`), failed ones included."""

    wire_bytes: int = 0


# --- who may be reached -----------------------------------------------------------------------------------------
_loopback_for_tests = False


@contextmanager
def loopback_only_for_tests() -> Iterator[None]:
    """Tests only: while this runs, `Reach.PUBLIC` requests may go to loopback addresses over http or https, and
    nowhere else (a public address is refused too). Process-wide, so servers in threads see it."""
    global _loopback_for_tests
    previous, _loopback_for_tests = _loopback_for_tests, True
    try:
        yield
    finally:
        _loopback_for_tests = previous


def public_urls_on_loopback() -> bool:
    """Whether `loopback_only_for_tests` is in force."""
    return _loopback_for_tests


def guard_enabled() -> bool:
    """Whether `Reach.SERVICE` requests are held to public https targets: always, except where
    `INTEGRATIONS_ALLOW_INSECURE_PDS` is set (tests, local demos, a PDS on a private network)."""
    return not app_settings.ALLOW_INSECURE_PDS


def _checked(reach: Reach) -> bool:
    return reach is Reach.PUBLIC or guard_enabled()


def is_public_address(ip: IPAddress) -> bool:
    """Whether `ip` is one public unicast host: in no block of the IANA special-purpose registries (IPv4 and IPv6),
    not multicast, and for IPv6 in the global unicast space (2000::/3). A NAT64 address (64:ff9b::/96) is judged by
    the IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        special, allocated = _SPECIAL_IPV6, ip in _GLOBAL_UNICAST
    else:
        special, allocated = _SPECIAL_IPV4, True
    # Python's own table (`is_global`) too: a block it knows and the registry list above misses is refused as well.
    return allocated and ip.is_global and not any(ip in block for block in special)


def _is_loopback(ip: IPAddress) -> bool:
    return any(ip.version == block.version and ip in block for block in _LOOPBACK)


def _allowed(ip: IPAddress, reach: Reach) -> bool:
    if reach is Reach.PUBLIC and _loopback_for_tests:
        return _is_loopback(ip)
    return is_public_address(ip)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order (a literal address resolves to itself).

    Raises OSError (`socket.gaierror`) when the name does not resolve. Tests patch this function.
    """
    addresses: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def resolve_allowed(host: str, port: int, reach: Reach = Reach.PUBLIC) -> list[IPAddress]:
    """The addresses of `host`, every one allowed for `reach`; OutboundRefused when any is not or the port is 0.

    A name that does not resolve is unreachable, not refused: OSError, like a connection failure.
    """
    if not 0 < port < 65536:
        raise OutboundRefused(host, f"port {port} is not allowed")
    addresses = resolve(host, port)
    if not addresses or not all(_allowed(address, reach) for address in addresses):
        raise OutboundRefused(
            host, "not a loopback address (tests)" if _test_loopback(reach) else "not a public address"
        )
    return addresses


def _test_loopback(reach: Reach) -> bool:
    return reach is Reach.PUBLIC and _loopback_for_tests


def check_url(url: str, reach: Reach = Reach.SERVICE) -> None:
    """Refuse (OutboundRefused) a URL a request could not reach: a scheme not allowed, port 0, or a host that resolves
    to any address not allowed for `reach`. OSError when the host does not resolve. Does nothing for `SERVICE`
    while insecure hosts are allowed.

    Requests are checked by the transport anyway; this is for URLs that are stored to be called later.
    """
    if not _checked(reach):
        return
    parsed = httpx.URL(url)
    _check_scheme(parsed, reach)
    resolve_allowed(parsed.host, parsed.port or 443, reach)


def _check_scheme(url: httpx.URL, reach: Reach = Reach.SERVICE) -> None:
    plain_allowed = not _checked(reach) or _test_loopback(reach)
    allowed = ("http", "https") if plain_allowed else ("https",)
    if url.scheme not in allowed:
        raise OutboundRefused(url.host or str(url), f"{url.scheme or 'no'} scheme is not allowed")


# --- deadlines ----------------------------------------------------------------------------------------------------
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_deadline", default=None)


def _at(seconds: float | None) -> float | None:
    """The stricter of the deadline in force and one `seconds` from now (monotonic clock)."""
    current = _deadline.get()
    if seconds is None:
        return current
    mine = time.monotonic() + seconds
    return mine if current is None else min(current, mine)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every request made inside (in this thread or context) ends within `seconds` from now, or sooner when an
    enclosing deadline says so. A request past it raises an httpx timeout (httpx.TimeoutException)."""
    token = _deadline.set(_at(seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline in force (never below 0), or None when there is none."""
    at = _deadline.get()
    return None if at is None else max(0.0, at - time.monotonic())


def _clamp(timeout: float | None, expired: type[Exception]) -> float | None:
    """The per-operation `timeout`, shortened to what is left of the deadline; `expired` raised when none is."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


# --- connecting ---------------------------------------------------------------------------------------------------
class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, pinned: resolve once, check every address for the backend's `reach`, connect to a
    checked address; every stream it opens keeps to the request's deadline.

    The host name is left to httpcore for TLS (SNI and certificate check) and to httpx for the Host header.
    """

    def __init__(self, reach: Reach = Reach.SERVICE) -> None:
        self.reach = reach

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        if not _checked(self.reach):
            timeout = _clamp(timeout, httpcore.ConnectTimeout)
            return _DeadlineStream(super().connect_tcp(host, port, timeout, local_address, socket_options))
        _clamp(timeout, httpcore.ConnectTimeout)
        try:
            addresses = resolve_allowed(host, port, self.reach)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} could not be resolved") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                connect_timeout = _clamp(timeout, httpcore.ConnectTimeout)  # resolving took some of it
                stream = super().connect_tcp(str(address), port, connect_timeout, local_address, socket_options)
                return _DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve_allowed never returns an empty list
        raise failure


# --- reading answers ----------------------------------------------------------------------------------------------
_LIMIT = "skyport.max_bytes"  # request extensions `get` passes to the transport
_METER = "skyport.meter"
_ENCODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


def _coding(headers: httpx.Headers, host: str) -> str | None:
    """The one content coding of an answer ("gzip" or "deflate"), None for none; UnsupportedEncoding otherwise."""
    codings = [c.strip().lower() for c in headers.get_list("content-encoding", split_commas=True)]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _ENCODINGS:
        raise UnsupportedEncoding(f"{host} answered with content coding {', '.join(codings)!r}")
    return _ENCODINGS[codings[0]]


class _Inflater:
    """Decodes gzip or deflate a step at a time: however much a chunk expands to, at most DECODE_STEP bytes are made
    before the caller has counted them."""

    def __init__(self, coding: str) -> None:
        self._deflate = coding == "deflate"
        self._object = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._object.eof:
            try:
                out = self._object.decompress(data, DECODE_STEP)
            except zlib.error as exc:
                if self._deflate and not self._started:  # "deflate" sent without its zlib wrapper, as many do
                    self._object, self._deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                    continue
                raise httpx.DecodingError(f"the compressed body is damaged ({exc})") from exc
            self._started = True
            if out:
                yield out
            data = self._object.unconsumed_tail
            if not data and len(out) < DECODE_STEP:
                return  # everything given was decoded (a full step may have more waiting: go round again)

    def finish(self) -> bytes:
        # Everything fed was decoded step by step: what is left is at most what zlib holds back (its window).
        return b"" if self._object.eof else self._object.flush()


class _GuardedBody(httpx.SyncByteStream):
    """A response body read under its request's deadline, decoded here, counted on the wire and decoded."""

    def __init__(
        self, raw: httpx.SyncByteStream, *, at: float | None, coding: str | None, limit: int, meter: Meter | None
    ) -> None:
        self._raw = raw
        self._at = at
        self._coding = coding
        self._limit = limit
        self._meter = meter

    def _chunks(self) -> Iterator[bytes]:
        iterator = iter(self._raw)
        while True:
            token = _deadline.set(self._at)
            try:
                chunk = next(iterator, None)
            finally:
                _deadline.reset(token)
            if chunk is None:
                return
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        inflater = _Inflater(self._coding) if self._coding else None
        wire = decoded = 0
        for chunk in self._chunks():
            wire += len(chunk)
            if self._meter is not None:
                self._meter.wire_bytes += len(chunk)
            if wire > self._limit:
                raise ResponseTooLarge(f"more than {self._limit} bytes")
            for piece in inflater.feed(chunk) if inflater else (chunk,):
                decoded += len(piece)
                if decoded > self._limit:
                    raise ResponseTooLarge(f"more than {self._limit} bytes once decoded")
                yield piece
        if inflater and (rest := inflater.finish()):
            if decoded + len(rest) > self._limit:
                raise ResponseTooLarge(f"more than {self._limit} bytes once decoded")
            yield rest

    def close(self) -> None:
        self._raw.close()


_BODY_HEADERS = frozenset({"content-encoding", "content-length"})


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool that opens its sockets through `GuardedBackend`, with a total deadline
    per request, one layer of gzip or deflate decoded here and a cap on every body. No proxy: a proxy would resolve
    the host itself, out of the guard's sight."""

    def __init__(
        self,
        *,
        reach: Reach = Reach.SERVICE,
        total: float | None = None,
        max_bytes: int = CLIENT_MAX_BYTES,
        verify: Any = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        http2: bool = False,
        retries: int = 0,
    ) -> None:
        super().__init__(verify=verify, limits=limits, http2=http2, retries=retries, trust_env=False)
        self.reach = reach
        self.total = total
        self.max_bytes = max_bytes
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            retries=retries,
            network_backend=GuardedBackend(reach),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING  # only what `_Inflater` decodes, whoever asked
        at = _at(self.total)
        token = _deadline.set(at)
        try:
            response = super().handle_request(request)
        finally:
            _deadline.reset(token)
        limit = int(request.extensions.get(_LIMIT, self.max_bytes))
        try:
            coding = _coding(response.headers, request.url.host)
            length = response.headers.get("content-length", "")
            if coding is None and length.isdigit() and int(length) > limit:
                raise ResponseTooLarge(f"{request.url.host} announced {length} bytes, more than {limit}")
        except httpx.DecodingError:
            response.close()
            raise
        # Decoded here: the coding (and the length it had on the wire) no longer describe the body httpx reads.
        dropped = _BODY_HEADERS if coding else {"content-encoding"}
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
        body = _GuardedBody(response.stream, at=at, coding=coding, limit=limit, meter=request.extensions.get(_METER))
        return httpx.Response(response.status_code, headers=headers, stream=body, extensions=response.extensions)


def make_client(
    timeout: float = DEFAULT_TIMEOUT, *, user_agent: str = USER_AGENT, reach: Reach = Reach.SERVICE
) -> httpx.Client:
    """An httpx client on the guarded transport that follows no redirect and ignores proxy variables (a proxy
    would connect where the guard cannot look). `timeout` is per operation; each request ends within
    `CLIENT_DEADLINE_FACTOR * timeout` in all, and its answer is read up to `CLIENT_MAX_BYTES`."""
    return httpx.Client(
        transport=GuardedTransport(reach=reach, total=timeout * CLIENT_DEADLINE_FACTOR),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING},
    )


_clients: dict[tuple[float, Reach], httpx.Client] = {}


def _shared_client(timeout: float, reach: Reach) -> httpx.Client:
    # One pooled client per timeout and reach for `get`; a lost race only builds a client that is dropped again.
    client = _clients.get((timeout, reach))
    if client is None:
        client = _clients.setdefault((timeout, reach), make_client(timeout, reach=reach))
    return client


def get(
    url: str,
    *,
    reach: Reach = Reach.PUBLIC,
    max_redirects: int = MAX_REDIRECTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    headers: dict[str, str] | None = None,
    meter: Meter | None = None,
) -> httpx.Response:
    """GET `url`, following at most `max_redirects` redirects by hand and reading at most `max_bytes` of the body
    (decoded, and on the wire), all within `timeout` seconds (and any enclosing `deadline`).

    Every hop's URL is checked for `reach` (scheme) and its host by the transport when it connects. `meter` counts
    the bytes received. Raises OutboundRefused, ResponseTooLarge, UnsupportedEncoding, httpx.TooManyRedirects or
    another httpx.HTTPError (a timeout is an httpx.TimeoutException). The returned response is fully read (a 3xx
    only when it has no Location).
    """
    client = _shared_client(timeout, reach)
    target = httpx.URL(url)
    extensions = {_LIMIT: max_bytes, _METER: meter}
    with deadline(timeout):
        for _ in range(max_redirects + 1):
            _check_scheme(target, reach)
            with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    target = target.join(location)
                    continue
                response.read()  # decoded and capped by the transport, as it arrives
                return response
    raise httpx.TooManyRedirects(f"more than {max_redirects} redirects from {url}", request=response.request)
