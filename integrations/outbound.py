"""Every outbound HTTP request of the app goes through here: the XRPC client, Test connection, link cards and
identity resolution.

While insecure hosts are not allowed (`INTEGRATIONS_ALLOW_INSECURE_PDS` off, i.e. in production) a request may only
reach a public address:

- the host is resolved once per connection, every address it resolves to must be public (`is_public_address`), and
  the socket is opened to the address that was checked, so DNS cannot answer differently the second time (rebinding);
  TLS still checks the certificate against the host name;
- port 0 is refused; redirects are never followed implicitly (`get` follows them by hand, checking every hop);
- a refusal is an `OutboundRefused` whose words name the host and never depend on whether anything listens there.

This module is generic: it must not import a provider package.
"""

import ipaddress
import socket
from typing import Any

import httpcore
import httpx

from integrations.conf import app_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = "Skyport (Django)"
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own defaults

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are the IPv4 address
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated `::a.b.c.d`, still routed to a.b.c.d by some stacks


class OutboundRefused(Exception):
    """A request was not sent because its target is not allowed; `host` is the host that was refused."""

    def __init__(self, host: str, reason: str = "not a public address") -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class ResponseTooLarge(Exception):
    """A response body was longer than the caller accepts."""


def guard_enabled() -> bool:
    """Whether outbound requests are held to public https targets: always, except where
    `INTEGRATIONS_ALLOW_INSECURE_PDS` is set (tests and local demos)."""
    return not app_settings.ALLOW_INSECURE_PDS


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 spelling stands for (mapped, compatible, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether `ip` is a public unicast address (not loopback, private, link-local, shared, multicast, reserved,
    unspecified, documentation or benchmarking). IPv6 spellings of an IPv4 address are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
        # 6to4 and Teredo tunnel to an embedded IPv4 of their own; site-local (fec0::/10) is private but `is_global`
        # in Python 3.13.
        if ip.sixtofour is not None or ip.teredo is not None or ip.is_site_local:
            return False
    # `is_global` alone lets multicast through (224.0.0.0/4 and ff00::/8 are "global" scopes).
    return ip.is_global and not ip.is_multicast


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


def resolve_public(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host`, all of them public; OutboundRefused when any is not or the port is 0.

    A name that does not resolve is unreachable, not refused: OSError, like a connection failure.
    """
    if not 0 < port < 65536:
        raise OutboundRefused(host, f"port {port} is not allowed")
    addresses = resolve(host, port)
    if not addresses or not all(is_public_address(address) for address in addresses):
        raise OutboundRefused(host)
    return addresses


def check_url(url: str) -> None:
    """Refuse (OutboundRefused) a URL a request could not reach while the guard is on: not https, port 0, or a host
    that resolves to any non-public address. OSError when the host does not resolve. Does nothing when off.

    Requests are checked by the transport anyway; this is for URLs that are stored to be called later.
    """
    if not guard_enabled():
        return
    parsed = httpx.URL(url)
    _check_scheme(parsed)
    resolve_public(parsed.host, parsed.port or 443)


def _check_scheme(url: httpx.URL) -> None:
    allowed = ("https",) if guard_enabled() else ("http", "https")
    if url.scheme not in allowed:
        raise OutboundRefused(url.host or str(url), f"{url.scheme or 'no'} scheme is not allowed")


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, pinned: resolve once, check every address, connect to a checked address.

    The host name is left to httpcore for TLS (SNI and certificate check) and to httpx for the Host header.
    """

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        if not guard_enabled():
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = resolve_public(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} could not be resolved") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve_public never returns an empty list
        raise failure


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool that opens its sockets through `GuardedBackend`. No proxy: a proxy
    would resolve the host itself, out of the guard's sight."""

    def __init__(
        self,
        *,
        verify: Any = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        http2: bool = False,
        retries: int = 0,
    ) -> None:
        super().__init__(verify=verify, limits=limits, http2=http2, retries=retries, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            retries=retries,
            network_backend=GuardedBackend(),
        )


def make_client(timeout: float = DEFAULT_TIMEOUT, *, user_agent: str = USER_AGENT) -> httpx.Client:
    """An httpx client on the guarded transport that follows no redirect and ignores proxy variables (a proxy
    would connect where the guard cannot look)."""
    return httpx.Client(
        transport=GuardedTransport(),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": user_agent},
    )


_clients: dict[float, httpx.Client] = {}
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _shared_client(timeout: float) -> httpx.Client:
    # One pooled client per timeout for `get`; a lost race only builds a client that is dropped again.
    client = _clients.get(timeout)
    if client is None:
        client = _clients.setdefault(timeout, make_client(timeout))
    return client


def get(
    url: str,
    *,
    max_redirects: int = MAX_REDIRECTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """GET `url`, following at most `max_redirects` redirects by hand and reading at most `max_bytes` of the body.

    Every hop's URL is checked (http or https; https only while the guard is on) and its host is checked by the
    transport when it connects. Raises OutboundRefused, ResponseTooLarge, httpx.TooManyRedirects or another
    httpx.HTTPError. The returned response is fully read (a 3xx only when it has no Location).
    """
    client = _shared_client(timeout)
    target = httpx.URL(url)
    for _ in range(max_redirects + 1):
        _check_scheme(target)
        with client.stream("GET", target, headers=headers) as response:
            location = response.headers.get("location")
            if response.is_redirect and location:
                target = target.join(location)
                continue
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise ResponseTooLarge(f"{target.host} sent more than {max_bytes} bytes")
            # The body is already decoded: its original encoding and length no longer describe it.
            kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_HEADERS]
            return httpx.Response(response.status_code, headers=kept, content=bytes(body), request=response.request)
    raise httpx.TooManyRedirects(f"more than {max_redirects} redirects from {url}", request=response.request)
