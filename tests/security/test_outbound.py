"""integrations.security.outbound: which addresses are public, resolution pinned to the checked address, redirects, and
the guard on every call the app makes (Service URL, the DID document's PDS endpoint, the refresh API).

No name here needs /etc/hosts: `outbound.resolve` (or `socket.getaddrinfo` under it) is patched. The test settings
allow insecure hosts, so tests of the guard switch it on with `settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False`.
"""

import base64
import gzip
import ipaddress
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import respx
from django.conf import settings as django_settings

from integrations.adapter import get_adapter
from integrations.bluesky import services
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import PdsClient
from integrations.models import Channel, ChannelEvent
from integrations.security import addresses, bodies, outbound

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture
def guard(settings):
    """Production rules: insecure hosts not allowed."""
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False


@dataclass
class FakeDns:
    """Names the guard resolves to chosen addresses; other hosts resolve for real. `calls` lists every lookup."""

    names: dict[str, list[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDns:
    dns = FakeDns()
    real = outbound.resolve

    def resolve(host: str, port: int) -> list[outbound.IPAddress]:
        dns.calls.append(host)
        if host in dns.names:
            return [ipaddress.ip_address(address) for address in dns.names[host]]
        return real(host, port)

    monkeypatch.setattr(outbound, "resolve", resolve)
    return dns


def count_as_public(monkeypatch, *addresses: str) -> None:
    """Let the guard take these local addresses for public ones (the test servers stand in for the internet)."""
    allowed = {ipaddress.ip_address(address) for address in addresses}
    monkeypatch.setattr(outbound, "is_public_address", lambda ip: ip in allowed)


@dataclass
class Server:
    host: str
    port: int
    requests: list[tuple[str, str]]  # (path, Host header)
    accept_encodings: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start a stdlib HTTP server in a thread: `serve(answer, host=..., port=...)`, `answer(path) -> Answer`."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str], Answer], host: str = "127.0.0.1", port: int = 0) -> Server:
        requests: list[tuple[str, str]] = []
        accept_encodings: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                requests.append((self.path, self.headers.get("Host", "")))
                accept_encodings.append(self.headers.get("Accept-Encoding", ""))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, headers, body = answer(self.path)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Server(host, server.server_address[1], requests, accept_encodings)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def page(body: bytes = b"<html>admin</html>") -> Callable[[str], Answer]:
    return lambda path: (200, {"Content-Type": "text/html"}, body)


def redirect_to(location: str) -> Callable[[str], Answer]:
    return lambda path: (302, {"Location": location}, b"")


# --- Which addresses are public -----------------------------------------------------------------------------------
NOT_PUBLIC = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # shared (carrier-grade NAT)
    "169.254.169.254",  # link-local (cloud metadata)
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "192.0.2.1",  # documentation
    "198.51.100.1",
    "203.0.113.1",
    "198.18.0.1",  # benchmarking
    "192.0.0.8",
    "::",
    "::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible
    "::169.254.169.254",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    "fe80::1",
    "fc00::1",
    "fd00::2",
    "fec0::1",  # site-local (is_global says True)
    "ff02::1",  # multicast (is_global says True)
    "ff0e::1",
    "2001:db8::1",  # documentation
    "2002:7f00:1::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "100::1",  # discard-only
    # The rest of the IANA special-purpose registries (Python's `is_global` takes several of these for public).
    "::ffff:8.8.8.8",  # IPv4-mapped, even of a public address: never a DNS answer for a public host
    "::ffff:0:0",
    "3fff::1",  # documentation (RFC 9637)
    "3fff:fff::1",
    "5f00::1",  # segment routing SIDs (RFC 9602)
    "2001:20::1",  # ORCHIDv2
    "2001:2f:ffff::1",
    "2001:10::1",  # deprecated ORCHID
    "2001:30::1",  # DRIP DETs
    "2001:1::1",  # PCP anycast
    "2001:1::2",  # TURN anycast
    "2001:2::1",  # benchmarking
    "2001:3::1",  # AMT
    "2001:4:112::1",  # AS112-v6
    "2620:4f:8000::1",  # direct delegation AS112
    "100:0:0:1::1",  # dummy prefix (RFC 9780)
    "192.0.0.9",  # PCP anycast
    "192.0.0.10",  # TURN anycast
    "192.0.0.170",  # NAT64 discovery
    "192.31.196.1",  # AS112-v4
    "192.52.193.1",  # AMT
    "192.88.99.1",  # deprecated 6to4 relay anycast
    "192.175.48.1",  # direct delegation AS112
    "0.1.2.3",  # "this network"
    "64:ff9b::c0a8:101",  # NAT64 of 192.168.1.1
    "4000::1",  # outside 2000::/3: not allocated for global unicast
    "::8.8.8.8",  # deprecated IPv4-compatible
]
PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2001:200::1",  # just past 2001::/23
    "3fff:1000::1",  # just past 3fff::/20
    "2a00:1450::1",
    "192.0.1.1",
    "192.88.100.1",
    "223.255.255.254",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_refused(address):
    assert addresses.is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_accepted(address):
    assert addresses.is_public_address(ipaddress.ip_address(address)) is True


# --- resolve_allowed: who may be reached -----------------------------------------------------------------------
def test_a_name_resolving_to_loopback_is_refused_naming_the_host(fake_dns, public_only):
    fake_dns.names["pds.example.com"] = ["127.0.0.1"]
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.resolve_allowed("pds.example.com", 443)
    assert refused.value.host == "pds.example.com"
    assert str(refused.value) == "pds.example.com: not a public address"


def test_one_private_address_among_public_ones_is_enough_to_refuse(fake_dns, public_only):
    fake_dns.names["pds.example.com"] = ["1.1.1.1", "10.0.0.1"]
    with pytest.raises(outbound.OutboundRefused):
        outbound.resolve_allowed("pds.example.com", 443)


def test_public_addresses_are_returned(fake_dns, public_only):
    fake_dns.names["pds.example.com"] = ["1.1.1.1", "2606:4700::1111"]
    assert outbound.resolve_allowed("pds.example.com", 443) == [
        ipaddress.ip_address("1.1.1.1"),
        ipaddress.ip_address("2606:4700::1111"),
    ]


def test_port_zero_is_refused(fake_dns):
    fake_dns.names["pds.example.com"] = ["1.1.1.1"]
    with pytest.raises(outbound.OutboundRefused, match="port 0"):
        outbound.resolve_allowed("pds.example.com", 0)
    assert fake_dns.calls == []


def test_a_name_that_does_not_resolve_is_unreachable_not_refused(monkeypatch):
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(OSError) as failure:
        outbound.resolve_allowed("nowhere.example.com", 443)
    assert not isinstance(failure.value, outbound.OutboundRefused)


def test_literal_addresses_resolve_to_themselves_without_dns():
    assert outbound.resolve("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]
    assert outbound.resolve("::1", 80) == [ipaddress.ip_address("::1")]


def test_in_the_tests_urls_users_name_reach_loopback_and_nothing_else(fake_dns, serve):
    """What the test suite runs under (`outbound.loopback_only_for_tests`, held open by conftest): a page on
    loopback is read, a name resolving to a public address is refused before any connection."""
    local = serve(page(b"local"))
    assert outbound.get(f"{local.url}/").content == b"local"
    fake_dns.names["news.example.com"] = ["93.184.215.14"]
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.get("https://news.example.com/story")
    assert refused.value.reason == "not a loopback address (tests)"
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_url("https://news.example.com/story", outbound.Reach.PUBLIC)


# --- Pinning: the connection goes to the address that was checked ------------------------------------------------
def test_the_connection_goes_to_the_checked_address_after_a_single_lookup(guard, serve, monkeypatch):
    public = serve(page(b"checked"), host="127.0.0.2")
    try:
        victim = serve(page(b"private"), host="127.0.0.1", port=public.port)
    except OSError:
        pytest.skip("the port is taken on 127.0.0.1")
    count_as_public(monkeypatch, "127.0.0.2")
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_dns(host, *args, **kwargs):
        if host != "rebind.example.com":
            return real_getaddrinfo(host, *args, **kwargs)
        lookups.append(host)  # a public-looking answer first, loopback for every later lookup
        address = "127.0.0.2" if len(lookups) == 1 else "127.0.0.1"
        return real_getaddrinfo(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    with outbound.make_client(5) as client:
        response = client.get(f"http://rebind.example.com:{public.port}/")
    assert response.content == b"checked"
    assert lookups == ["rebind.example.com"]
    assert public.requests == [("/", f"rebind.example.com:{public.port}")]  # the name still goes in Host (and SNI)
    assert victim.requests == []

    with outbound.make_client(5) as client, pytest.raises(outbound.OutboundRefused):
        client.get(f"http://rebind.example.com:{public.port}/")  # a new connection, a new lookup: now loopback
    assert lookups == ["rebind.example.com", "rebind.example.com"]
    assert victim.requests == []


def test_the_guard_is_off_while_insecure_hosts_are_allowed(serve, fake_dns):
    local = serve(page(b"local"))
    with outbound.make_client(5) as client:
        assert client.get(local.url).content == b"local"
    assert fake_dns.calls == []


# --- Redirects ----------------------------------------------------------------------------------------------------
@pytest.fixture
def redirector(serve, fake_dns, monkeypatch) -> tuple[Server, Server]:
    """A 'public' server (pds.example.com, really 127.0.0.2) redirecting to the app's own /admin/ on 127.0.0.1."""
    admin = serve(page())
    public = serve(redirect_to(f"{admin.url}/admin/"), host="127.0.0.2")
    fake_dns.names["pds.example.com"] = ["127.0.0.2"]
    count_as_public(monkeypatch, "127.0.0.2")
    return public, admin


@pytest.mark.parametrize("guarded", [True, False], ids=["guard on", "guard off"])
def test_an_xrpc_call_does_not_follow_a_redirect(settings, redirector, guarded):
    public, admin = redirector
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = not guarded
    base = f"http://pds.example.com:{public.port}" if guarded else public.url
    with pytest.raises(errors.Redirected) as raised:
        PdsClient(base).describe_server()
    assert raised.value.temporary is False
    assert raised.value.url == base
    assert len(public.requests) == 1
    assert admin.requests == []


def test_get_refuses_a_redirect_to_loopback_when_guarded(guard, public_only, redirector, monkeypatch):
    public, admin = redirector
    # No TLS server here: let http through (the scheme rule has its own test) to test the address check per hop.
    monkeypatch.setattr(outbound, "_check_scheme", lambda url, reach: None)
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.get(f"http://pds.example.com:{public.port}/card")
    assert refused.value.host == "127.0.0.1"
    assert len(public.requests) == 1
    assert admin.requests == []


def test_get_follows_redirects_by_hand_when_the_guard_is_off(redirector):
    public, admin = redirector
    response = outbound.get(f"{public.url}/card")
    assert response.status_code == 200
    assert response.content == b"<html>admin</html>"
    assert admin.requests[0][0] == "/admin/"


def test_get_follows_at_most_max_redirects(serve):
    loop = serve(lambda path: (302, {"Location": f"/hop{len(path)}"}, b""))
    with pytest.raises(httpx.TooManyRedirects):
        outbound.get(f"{loop.url}/", max_redirects=3)
    assert len(loop.requests) == 4  # the first request and three redirects


def test_get_refuses_plain_http_when_guarded(guard, public_only, fake_dns):
    with pytest.raises(outbound.OutboundRefused, match="http scheme"):
        outbound.get("http://example.com/")
    assert fake_dns.calls == []


def test_get_reads_at_most_max_bytes(serve):
    big = serve(page(b"x" * 5000))
    with pytest.raises(bodies.ResponseTooLarge):
        outbound.get(big.url, max_bytes=1000)
    assert outbound.get(big.url, max_bytes=5000).content == b"x" * 5000


# --- Service URL calls --------------------------------------------------------------------------------------------
def test_a_service_url_resolving_to_loopback_is_refused_at_call_time(guard, fake_dns):
    fake_dns.names["pds.example.com"] = ["127.0.0.1"]
    with pytest.raises(errors.AddressRefused) as raised:
        services.test_connection("https://pds.example.com")
    assert raised.value.url == "https://pds.example.com"
    message = get_adapter().describe(raised.value, service_url="https://bsky.social").message
    assert message.startswith("The server pds.example.com is not at a public network address")


# --- The DID document's PDS endpoint ------------------------------------------------------------------------------
SERVICE = "https://pds.example.com"
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


def fake_jwt(scope: str) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'scope': scope, 'exp': int(time.time()) + 3600, 'sub': DID})}.sig"


def session_json(pds_endpoint: str) -> dict:
    return {
        "did": DID,
        "handle": "alice.example.com",
        "accessJwt": fake_jwt("com.atproto.appPass"),
        "refreshJwt": fake_jwt("com.atproto.refresh"),
        "active": True,
        "didDoc": {
            "id": DID,
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds_endpoint}],
        },
    }


NO_PROFILE = httpx.Response(400, json={"error": "RecordNotFound", "message": "Could not locate record"})


@pytest.mark.django_db
def test_a_did_document_endpoint_resolving_to_loopback_is_not_stored_or_called(guard, fake_dns, monkeypatch, user):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", SERVICE)
    fake_dns.names["evil.example.net"] = ["127.0.0.1"]
    with respx.mock(assert_all_called=True) as mock:  # any other request (to evil.example.net) fails the test
        mock.get(url__startswith=f"{SERVICE}/xrpc/com.atproto.identity.resolveHandle").respond(json={"did": DID})
        mock.post(f"{SERVICE}/xrpc/com.atproto.server.createSession").respond(
            json=session_json("https://evil.example.net")
        )
        profile = mock.get(url__startswith=f"{SERVICE}/xrpc/com.atproto.repo.getRecord").mock(return_value=NO_PROFILE)
        channel = services.connect(user, "alice.example.com", "abcd-efgh-ijkl-mnop")
    assert profile.called  # the profile was read from the Service URL
    assert Channel.objects.get(pk=channel.pk).pds_endpoint == ""
    event = channel.events.get(kind=ChannelEvent.Kind.CONNECTED)
    assert "https://evil.example.net" in event.detail
    assert "not a public address" in event.detail


@pytest.mark.django_db
def test_a_refresh_whose_did_document_moves_to_a_private_endpoint_goes_back_to_the_service_url(
    guard, fake_dns, monkeypatch, user
):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", SERVICE)
    fake_dns.names["pds.old.example.net"] = ["1.1.1.1"]
    fake_dns.names["evil.example.net"] = ["10.0.0.7"]
    with respx.mock(assert_all_called=True) as mock:
        mock.get(url__startswith=f"{SERVICE}/xrpc/com.atproto.identity.resolveHandle").respond(json={"did": DID})
        mock.post(f"{SERVICE}/xrpc/com.atproto.server.createSession").respond(
            json=session_json("https://pds.old.example.net")
        )
        mock.get(url__startswith="https://pds.old.example.net/xrpc/com.atproto.repo.getRecord").mock(
            return_value=NO_PROFILE
        )
        channel = services.connect(user, "alice.example.com", "abcd-efgh-ijkl-mnop")
    assert channel.pds_endpoint == "https://pds.old.example.net"

    with respx.mock(assert_all_called=True) as mock:
        mock.post("https://pds.old.example.net/xrpc/com.atproto.server.refreshSession").respond(
            json=session_json("https://evil.example.net")
        )
        profile = mock.get(url__startswith=f"{SERVICE}/xrpc/com.atproto.repo.getRecord").mock(return_value=NO_PROFILE)
        services.refresh_channel(channel)
    assert profile.called
    assert Channel.objects.get(pk=channel.pk).pds_endpoint == ""
    event = channel.events.get(kind=ChannelEvent.Kind.REFRESHED)
    assert "https://evil.example.net" in event.detail


# --- No port-scan oracle ------------------------------------------------------------------------------------------
@pytest.mark.pds
@pytest.mark.django_db
def test_refresh_answers_the_same_for_an_open_and_a_closed_private_port(
    channel, alice_client, settings, serve, fake_dns
):
    listening = serve(page()).port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    fake_dns.names["pds.internal.example.com"] = ["127.0.0.1"]
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False

    answers = []
    for port in (listening, closed):
        Channel.objects.filter(pk=channel.pk).update(pds_endpoint=f"https://pds.internal.example.com:{port}")
        response = alice_client.post(f"/api/v1/channels/{channel.pk}/refresh/")
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    status, body = answers[0]
    assert (status, body["error"]["code"]) == (502, "address_refused")
    assert "pds.internal.example.com" in body["error"]["message"]
    stored = Channel.objects.get(pk=channel.pk)
    assert stored.refresh_jwt == channel.refresh_jwt  # refused before any call: the session is kept


# --- Deadlines: a total one per request, not only one per read ------------------------------------------------------
@pytest.fixture
def drip() -> Iterator[str]:
    """A server on loopback that answers at once and then sends its body one byte every two seconds (ten bytes)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "10")
            self.end_headers()
            for _ in range(10):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up
                time.sleep(2)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_page_dripping_a_byte_every_two_seconds_is_cut_at_the_deadline(drip):
    """Each read gets a byte within the 3 s per-read timeout; only the total deadline ends it (the drip would
    take 20 s)."""
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        outbound.get(f"{drip}/page", timeout=3)
    assert time.monotonic() - started < 8  # 3 s and a generous margin, far from 20


def test_an_enclosing_deadline_cuts_every_request_inside_it(drip):
    started = time.monotonic()
    with outbound.deadline(1.5), pytest.raises(httpx.TimeoutException):
        outbound.get(f"{drip}/page", timeout=10)
    assert time.monotonic() - started < 6
    assert outbound.remaining() is None  # the deadline ended with its block


def test_an_xrpc_call_to_a_dripping_server_ends_within_its_deadline(drip, settings):
    """A channel's own PDS comes from a DID document its user controls: the XRPC client has a total deadline too
    (3 x INTEGRATIONS_HTTP_TIMEOUT)."""
    settings.INTEGRATIONS_HTTP_TIMEOUT = 2.5  # each byte comes within it
    started = time.monotonic()
    with pytest.raises(errors.PdsTimeout):
        PdsClient(drip).describe_server()
    assert time.monotonic() - started < 14  # 7.5 s and a margin, far from 20


# --- Compressed bodies: one layer of gzip or deflate, counted decoded as it streams ---------------------------------
def compressed(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data, 9)
    if coding == "deflate":
        return zlib.compress(data, 9)
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # "deflate" as many servers send it: no zlib wrapper
    return raw.compress(data) + raw.flush()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw deflate"])
def test_a_page_in_gzip_or_deflate_is_read_decoded(serve, coding):
    text = b"<title>Compressed page</title>" * 100
    sent = "deflate" if coding == "raw deflate" else coding
    server = serve(
        lambda path: (200, {"Content-Encoding": sent, "Content-Type": "text/html"}, compressed(coding, text))
    )
    response = outbound.get(f"{server.url}/")
    assert response.content == text
    assert "content-encoding" not in response.headers


def test_requests_ask_only_for_gzip_and_deflate_whoever_asks_for_more(serve):
    server = serve(lambda path: (200, {"Content-Type": "text/plain"}, b"ok"))
    outbound.get(f"{server.url}/", headers={"Accept-Encoding": "zstd, br, gzip"})
    with outbound.make_client(5) as client:
        client.get(f"{server.url}/")
    assert server.accept_encodings == ["gzip, deflate", "gzip, deflate"]


@pytest.mark.parametrize("coding", ["gzip, gzip", "zstd", "br", "compress", "gzip, deflate"])
def test_any_other_coding_or_a_second_layer_is_refused(serve, coding):
    body = gzip.compress(gzip.compress(b"<title>x</title>"))
    server = serve(lambda path: (200, {"Content-Encoding": coding, "Content-Type": "text/html"}, body))
    with pytest.raises(bodies.UnsupportedEncoding):
        outbound.get(f"{server.url}/")


BOMB = gzip.compress(b"\0" * 300_000_000, 9)  # 300 MB of zeros in about 300 KB


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compression_bomb_stops_at_the_cap_and_memory_stays_bounded(serve, coding):
    """Counted decoded, a step at a time: the page is refused at 1 MB, and this process's allocations while reading
    it stay near that (tracemalloc, a generous margin; `make bench` has the precise figure)."""
    body = BOMB if coding == "gzip" else zlib.compress(b"\0" * 300_000_000, 9)
    server = serve(lambda path: (200, {"Content-Encoding": coding, "Content-Type": "text/html"}, body))
    tracemalloc.start()
    try:
        with pytest.raises(bodies.ResponseTooLarge):
            outbound.get(f"{server.url}/", max_bytes=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, f"{peak:,} bytes at the peak"


def test_the_xrpc_client_refuses_a_stacked_compression_too(serve, settings):
    body = gzip.compress(gzip.compress(json.dumps({"did": "did:web:x"}).encode()))
    server = serve(lambda path: (200, {"Content-Encoding": "gzip, gzip", "Content-Type": "application/json"}, body))
    with pytest.raises(errors.InvalidResponse) as raised:
        PdsClient(server.url).describe_server()
    assert "content coding 'gzip, gzip'" in str(raised.value)


@pytest.mark.pds
@pytest.mark.django_db
def test_a_referenced_posts_own_pds_is_public_only_even_while_insecure_pds_hosts_are_allowed(
    channel, public_only, monkeypatch, serve
):
    """Quoting or replying to a post on another server reads it from the PDS its DID document names: a server the
    user's input leads to, so INTEGRATIONS_ALLOW_INSECURE_PDS (on here) does not let it be a local one."""
    from integrations.bluesky.posts import references

    internal = serve(page(b"{}"))  # an internal service posing as that PDS: never asked
    monkeypatch.setattr(references.door, "call", lambda channel, fn: None)  # "not on this PDS"
    monkeypatch.setattr(references, "_pds_of", lambda did: internal.url)
    with pytest.raises(errors.InvalidReference) as refused:  # the reference cannot be used: no "try again"
        references.resolve(channel, "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/3kabcdefghijk")
    assert f"{internal.url}, is not a public https address, so it was not called" in str(refused.value)
    assert internal.requests == []
