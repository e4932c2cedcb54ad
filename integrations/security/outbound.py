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
(`addresses.is_public_address`: the IANA special-purpose registries in full), and the socket is opened to the
address that was checked, so DNS cannot answer differently the second time (rebinding); TLS still checks the
certificate against the host name. Port 0 is refused; redirects are never followed implicitly (`get` follows them by
hand, checking every hop); a refusal is an `OutboundRefused` whose words name the host and never depend on whether
anything listens there.

**Tests** serve pages and handles on loopback. `loopback_only_for_tests()` (a context manager; the test suite's
conftest holds it open for the whole run, and `tests.support.localidentity.identities_on` for the benchmarks) makes
`Reach.PUBLIC` mean "loopback addresses (127.0.0.0/8, ::1) over http or https, and nothing else": a test that runs
inside it can be sure no link card or handle look-up leaves the machine. It is a module switch, not a setting:
production code never turns it on.

**Deadlines.** Each request has a total deadline (connect, TLS, sending, headers and body together), on top of the
per-operation timeout: `get(timeout=...)` is the total of one fetch (every redirect included), a client from
`make_client` gives each request `3 * timeout`, and `deadline(seconds)` sets one for everything inside it (the
stricter one wins; the clock is `deadlines`). A page that drips one byte every two seconds is cut at its deadline.
Name resolution is the system resolver's (bounded by its own `timeout`/`attempts`); the deadline is checked as soon
as it answers.

**Bodies** are decoded by the transport (one layer of gzip or deflate) and capped as they stream, decoded and on the
wire (`bodies`: `ResponseTooLarge`, `UnsupportedEncoding`).

This module is generic, and so are the three it uses (`addresses`, `deadlines`, `bodies`): they must not import a
provider package.
"""

import enum
import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from integrations.conf import app_settings
from integrations.security.addresses import IPAddress, is_loopback, is_public_address
from integrations.security.bodies import (
    ACCEPT_ENCODING,
    Meter,
    ResponseTooLarge,
    content_coding,
    decode_body,
)
from integrations.security.deadlines import deadline, pinned, remaining, stricter

USER_AGENT = "Skyport (Django)"
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 1_000_000
# What a client from `make_client` (the XRPC client) reads of one answer at most: a page of records is kilobytes.
CLIENT_MAX_BYTES = 16_000_000
# A client's requests each end within this many times its per-operation timeout (an uploadBlob on a slow link).
CLIENT_DEADLINE_FACTOR = 3
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own defaults


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


def _allowed(ip: IPAddress, reach: Reach) -> bool:
    if reach is Reach.PUBLIC and _loopback_for_tests:
        return is_loopback(ip)
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


class _GuardedBody(httpx.SyncByteStream):
    """A response body read under its request's deadline, decoded here, counted on the wire and decoded (`bodies`)."""

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
            with pinned(self._at):
                chunk = next(iterator, None)
            if chunk is None:
                return
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        return decode_body(self._chunks(), coding=self._coding, limit=self._limit, meter=self._meter)

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
        at = stricter(self.total)
        with pinned(at):
            response = super().handle_request(request)
        limit = int(request.extensions.get(_LIMIT, self.max_bytes))
        try:
            coding = content_coding(response.headers, request.url.host)
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
