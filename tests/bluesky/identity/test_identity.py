"""integrations.bluesky.identity.resolution: handles by DNS (a dnslib server on loopback) and by the PDS's well-known
endpoint, DID documents from the local PDS's PLC directory and from did:web hosts (a local HTTP server), verification,
the outbound guard, and caching.

Handles on the local PDS end in `.test`; their names are made to resolve to 127.0.0.1 by patching
`socket.getaddrinfo`, and `identity.WEB_BASE` points well-known URLs at a loopback port over http.
"""

import ipaddress
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import respx

from integrations.bluesky.identity import resolution
from integrations.bluesky.xrpc import servers as service_url_rules
from integrations.security import outbound
from tests.security.test_outbound import drip  # noqa: F401 (a fixture)
from tests.support.dnszone import Zone, serving_zone
from tests.support.localidentity import resolve_test_names_locally


# --- a DNS server on loopback -----------------------------------------------------------------------------------
@pytest.fixture
def zone(settings) -> Iterator[Zone]:
    with serving_zone() as served:
        settings.INTEGRATIONS_DNS_NAMESERVERS = [served.address]
        yield served


# --- a web server on loopback for well-known files and did:web documents ------------------------------------------
@dataclass
class Web:
    files: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)  # (host, path) -> answer
    hits: list[str] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def web(monkeypatch) -> Iterator[Web]:
    site = Web()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            host = self.headers.get("Host", "").split(":")[0]
            site.hits.append(f"{host}{self.path}")
            status, body = site.files.get((host, self.path), (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(resolution, "WEB_BASE", f"http://{{host}}:{site.port}")
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def loopback_names(monkeypatch):
    """`*.test` and `*.example` names connect to 127.0.0.1 (the guard is off in these tests unless said)."""
    resolve_test_names_locally(monkeypatch)


@pytest.fixture
def plc(pds, settings):
    settings.INTEGRATIONS_PLC_URL = pds.plc_url
    return pds


@pytest.fixture
def at_pds(monkeypatch, pds):
    """Well-known URLs go to the local PDS, which answers `/.well-known/atproto-did` for its own handles."""
    monkeypatch.setattr(resolution, "WEB_BASE", f"http://{{host}}:{pds.port}")


def document(did: str, handle: str, pds: str = "https://pds.example.com") -> bytes:
    return json.dumps(
        {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "alsoKnownAs": [f"at://{handle}"],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds}],
        }
    ).encode()


# --- handle → DID ---------------------------------------------------------------------------------------------
def test_a_handle_on_the_local_pds_resolves_through_its_well_known_endpoint_and_is_verified(zone, plc, at_pds):
    account = plc.create_account()
    assert resolution.resolve_handle(account.handle) == account.did
    assert f"_atproto.{account.handle}" in zone.queries  # DNS was asked first, and had nothing

    found = resolution.resolve_identity(account.handle)
    assert isinstance(found, resolution.Identity)
    assert (found.did, found.handle, found.handle_verified) == (account.did, account.handle, True)
    assert found.pds is not None and found.pds.rstrip("/").endswith(f":{plc.port}")


def test_a_did_resolves_to_its_handle_and_pds(zone, plc, at_pds):
    account = plc.create_account()
    found = resolution.resolve_identity(account.did)
    assert isinstance(found, resolution.Identity)
    assert (found.did, found.handle, found.handle_verified) == (account.did, account.handle, True)


def test_a_dns_txt_record_resolves_a_handle(zone, web):
    zone.txt["_atproto.alice.example"] = ["did=did:web:alice.example"]
    web.files[("alice.example", "/.well-known/did.json")] = (200, document("did:web:alice.example", "alice.example"))
    found = resolution.resolve_identity("@Alice.Example")
    assert isinstance(found, resolution.Identity)
    assert (found.did, found.handle, found.handle_verified) == ("did:web:alice.example", "alice.example", True)
    assert found.pds == "https://pds.example.com"
    assert not any("atproto-did" in hit for hit in web.hits)  # DNS answered: no well-known request


def test_a_txt_record_naming_another_did_leaves_the_handle_unverified(zone, plc, at_pds):
    owner, other = plc.create_account(), plc.create_account()
    zone.txt[f"_atproto.{owner.handle}"] = [f"did={other.did}"]
    found = resolution.resolve_identity(owner.handle)
    assert isinstance(found, resolution.Identity)
    assert found.did == other.did
    assert found.handle_verified is False  # the other account's document names its own handle, not this one


def test_txt_records_naming_two_dids_are_a_conflict(zone, web):
    zone.txt["_atproto.twice.example"] = [f"did=did:plc:{'a' * 24}", f"did=did:plc:{'b' * 24}"]
    found = resolution.lookup_handle("twice.example")
    assert isinstance(found, resolution.Failure) and found.kind == "invalid"
    assert resolution.resolve_handle("twice.example") is None


def test_a_name_that_does_not_exist_is_unresolved(zone, plc, at_pds):
    found = resolution.resolve_identity("nobody-here.test")
    assert isinstance(found, resolution.Failure) and found.kind == "unresolved"
    assert "_atproto.nobody-here.test" in zone.queries


def test_not_a_handle_is_invalid_without_any_request(zone):
    found = resolution.resolve_identity("not a handle")
    assert isinstance(found, resolution.Failure) and found.kind == "invalid"
    assert zone.queries == []


# --- DID documents ------------------------------------------------------------------------------------------------
def test_a_did_web_document_about_another_did_is_invalid(zone, web):
    web.files[("mallory.example", "/.well-known/did.json")] = (200, document("did:web:alice.example", "alice.example"))
    found = resolution.resolve_did("did:web:mallory.example")
    assert isinstance(found, resolution.Failure) and found.kind == "invalid"


def test_a_document_too_large_is_invalid(zone, web):
    big = document("did:web:big.example", "big.example") + b" " * resolution.MAX_DOCUMENT_BYTES
    web.files[("big.example", "/.well-known/did.json")] = (200, big)
    found = resolution.resolve_did("did:web:big.example")
    assert isinstance(found, resolution.Failure) and found.kind == "invalid"


def test_a_did_web_with_a_path_or_another_method_is_invalid_without_a_request(web):
    for did in ("did:web:example.com:users:alice", "did:key:z6Mkabc"):
        found = resolution.resolve_did(did)
        assert isinstance(found, resolution.Failure) and found.kind == "invalid"
    assert web.hits == []


def test_a_missing_plc_document_is_unresolved(plc):
    found = resolution.resolve_did("did:plc:zzzzzzzzzzzzzzzzzzzzzzzz")
    assert isinstance(found, resolution.Failure) and found.kind == "unresolved"


# --- the outbound guard ------------------------------------------------------------------------------------------
@pytest.fixture
def guard_on(settings, monkeypatch):
    """Production rules, with `*.private.example` resolving to a private address and `*.public.example` to a public
    one (no request reaches either)."""
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    monkeypatch.setattr(resolution, "WEB_BASE", "https://{host}")

    def resolve(host, port):
        if host.endswith("private.example"):
            return [ipaddress.ip_address("10.0.0.5")]
        if host.endswith("public.example"):
            return [ipaddress.ip_address("93.184.216.34")]
        raise socket.gaierror(host)

    monkeypatch.setattr(outbound, "resolve", resolve)


def test_a_handle_whose_well_known_url_is_private_is_refused(zone, guard_on):
    found = resolution.lookup_handle("alice.private.example")
    assert isinstance(found, resolution.Failure) and found.kind == "refused"
    assert resolution.resolve_handle("alice.private.example") is None


def test_a_did_web_document_on_a_private_address_is_refused(zone, guard_on):
    found = resolution.resolve_did("did:web:alice.private.example")
    assert isinstance(found, resolution.Failure) and found.kind == "refused"


def test_a_did_document_naming_a_private_pds_is_refused(zone, guard_on, settings):
    settings.INTEGRATIONS_PLC_URL = "https://plc.public.example"
    did = "did:plc:cccccccccccccccccccccccc"
    zone.txt["_atproto.carol.public.example"] = [f"did={did}"]
    with respx.mock:
        respx.get(f"https://plc.public.example/{did}").respond(
            200, content=document(did, "carol.public.example", pds="https://pds.private.example")
        )
        found = resolution.resolve_identity("carol.public.example")
    assert isinstance(found, resolution.Failure) and found.kind == "refused"
    assert "pds.private.example" in found.detail


def test_the_plc_directory_on_a_private_address_is_refused(guard_on, settings):
    settings.INTEGRATIONS_PLC_URL = "https://plc.private.example"
    found = resolution.resolve_did("did:plc:cccccccccccccccccccccccc")
    assert isinstance(found, resolution.Failure) and found.kind == "refused"


# --- caching ---------------------------------------------------------------------------------------------------------
def test_a_second_resolution_makes_no_request(zone, web):
    zone.txt["_atproto.cached.example"] = ["did=did:web:cached.example"]
    web.files[("cached.example", "/.well-known/did.json")] = (200, document("did:web:cached.example", "cached.example"))
    first = resolution.resolve_identity("cached.example")
    queries, hits = len(zone.queries), len(web.hits)
    assert resolution.resolve_identity("cached.example") == first
    assert (len(zone.queries), len(web.hits)) == (queries, hits)


def test_a_failure_is_cached_briefly_too(zone, web):
    assert isinstance(resolution.resolve_identity("gone.example"), resolution.Failure)
    queries, hits = len(zone.queries), len(web.hits)
    assert isinstance(resolution.resolve_identity("gone.example"), resolution.Failure)
    assert (len(zone.queries), len(web.hits)) == (queries, hits)


# --- where an account signs in --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("service_url", "pds", "expected"),
    [
        ("https://bsky.social", "https://morel.us-east.host.bsky.network", True),
        ("https://bsky.social", "https://pds.example.com", False),
        ("https://pds.example.com", "https://pds.example.com/", True),
        ("https://pds.example.com", "https://morel.us-east.host.bsky.network", False),
        ("http://127.0.0.1:2583", "http://127.0.0.1:2584", False),
        ("http://127.0.0.1:2583", "http://localhost:2583", True),
    ],
)
def test_which_pds_signs_in_through_which_service_url(service_url, pds, expected):
    assert service_url_rules.signs_in_through(service_url, pds) is expected


# --- the connect diagnosis ------------------------------------------------------------------------------------------
@pytest.fixture
def refusing_server(settings, monkeypatch) -> Iterator[str]:
    """A server that refuses every sign-in the way a PDS does (401 AuthenticationRequired), set as the Service URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, error: str) -> None:
            body = json.dumps({"error": error, "message": "Invalid identifier or password"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._answer(400, "InvalidRequest")  # resolveHandle: this server knows no one

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(401, "AuthenticationRequired")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    from django.conf import settings as django_settings

    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", url)
    yield url
    server.shutdown()
    server.server_close()


def connect_page(client, identifier, password):
    from django.urls import reverse

    return client.post(reverse("integrations:connect-bluesky"), {"identifier": identifier, "app_password": password})


@pytest.mark.django_db
def test_an_account_hosted_elsewhere_is_told_where_and_nothing_is_stored(
    zone, plc, at_pds, refusing_server, alice_client, account
):
    from integrations.models import Channel

    response = connect_page(alice_client, account.handle, account.app_passwords[0])
    text = " ".join(response.content.decode().split())
    hosted = f"http://localhost:{plc.port}"  # as the account's DID document names its PDS
    expected = (
        f"@{account.handle} is hosted on {hosted}, but this site signs in through {refusing_server}. "
        f"Ask your administrator to allow accounts on other servers, or to set {hosted} as the Service URL."
    )
    assert expected in text
    assert Channel.objects.count() == 0


@pytest.mark.django_db
def test_the_diagnosis_goes_on_the_event_log_of_the_users_channel_for_that_account(
    zone, plc, at_pds, channel, user, account, refusing_server
):
    from integrations.bluesky import services
    from integrations.bluesky.xrpc import errors
    from integrations.models import ChannelEvent

    with pytest.raises(errors.HostedElsewhere) as refused:
        services.connect(user, account.did, account.app_passwords[0])
    assert refused.value.handle == account.handle and refused.value.url == refusing_server
    event = channel.events.first()
    assert (event.kind, event.error_code) == (ChannelEvent.Kind.CONNECT_REFUSED, "hosted_elsewhere")
    assert account.handle in event.detail and refusing_server in event.detail


@pytest.mark.django_db
def test_a_handle_that_does_not_resolve_keeps_the_servers_refusal(zone, plc, at_pds, refusing_server, user):
    from integrations.bluesky import services
    from integrations.bluesky.xrpc import errors

    with pytest.raises(errors.InvalidCredentials):
        services.connect(user, "nobody-here.test", "abcd-efgh-ijkl-mnop")
    with pytest.raises(errors.InvalidCredentials):
        services.connect(user, "someone@example.com", "abcd-efgh-ijkl-mnop")  # emails are not resolved


@pytest.mark.django_db
def test_an_account_on_the_service_urls_own_server_keeps_the_servers_refusal(zone, plc, at_pds, use_pds, user, account):
    from integrations.bluesky import services
    from integrations.bluesky.xrpc import errors

    with pytest.raises(errors.InvalidCredentials):
        services.connect(user, account.handle, "wrong-pass-word-here")


# --- the admin's Test connection with an account ---------------------------------------------------------------------
@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def run_test_connection(client, service_url: str, account: str) -> str:
    response = client.post(
        "/admin/api-integration/bluesky",
        {"service_url": service_url, "status": "enabled", "test_account": account, "_test": "Test"},
    )
    assert response.status_code == 200
    return " ".join(response.content.decode().split())


@pytest.mark.django_db
def test_test_connection_shows_an_accounts_did_pds_verification_and_whether_it_can_sign_in(
    zone, plc, at_pds, admin_client_, account, refusing_server
):
    from integrations.models import IntegrationOption

    text = run_test_connection(admin_client_, plc.url, f"@{account.handle}")
    assert f'<code id="account-did">{account.did}</code>' in text
    assert f'<code id="account-pds">http://localhost:{plc.port}</code>' in text
    assert '<strong id="account-verified">verified</strong>' in text
    assert '<strong id="account-can-sign-in">yes</strong>' in text

    text = run_test_connection(admin_client_, refusing_server, account.did)
    assert '<strong id="account-can-sign-in">no</strong>' in text
    assert f"this site signs in through {refusing_server}, the account is hosted on http://localhost:{plc.port}" in text
    assert not IntegrationOption.objects.filter(value=account.handle).exists()  # testing saves nothing


@pytest.mark.django_db
def test_test_connection_says_when_an_account_does_not_resolve(zone, plc, at_pds, admin_client_):
    text = run_test_connection(admin_client_, plc.url, "nobody-here.test")
    assert (
        'id="account-problem">nobody-here.test could not be looked up: DNS has no _atproto.nobody-here.test TXT '
        f"record; http://nobody-here.test:{plc.port}/.well-known/atproto-did answered 404.</p>"
    ) in text  # an answer: nothing says to try again
    assert '<strong id="account-can-sign-in">not known</strong>' in text  # never "no" when it cannot be known


@pytest.mark.django_db
def test_test_connection_without_an_account_shows_no_account_section(admin_client_, plc):
    assert 'id="account-check"' not in run_test_connection(admin_client_, plc.url, "")


# --- accounts on other servers: allow -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_with_other_servers_allowed_an_account_signs_in_on_its_own_pds(
    zone, plc, at_pds, refusing_server, alice_client, account, settings
):
    from integrations.models import Channel

    settings.INTEGRATIONS_BLUESKY_OTHER_SERVERS = "allow"
    response = connect_page(alice_client, account.handle, account.app_passwords[0])
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert channel.did == account.did
    assert channel.service_url == f"http://localhost:{plc.port}"  # refreshes go to the account's own PDS
    assert plc.session_count(account.did) >= 1


@pytest.mark.django_db
def test_with_other_servers_allowed_an_unverified_handle_is_still_only_told(
    zone, plc, at_pds, refusing_server, user, account, settings
):
    from integrations.bluesky import services
    from integrations.bluesky.xrpc import errors
    from integrations.models import Channel

    settings.INTEGRATIONS_BLUESKY_OTHER_SERVERS = "allow"
    other = plc.create_account()
    zone.txt[f"_atproto.{account.handle}"] = [f"did={other.did}"]  # this handle's DNS names someone else
    with pytest.raises(errors.HostedElsewhere):
        services.connect(user, account.handle, account.app_passwords[0])
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_the_admin_page_sets_other_servers_and_test_connection_follows_it(
    zone, plc, at_pds, admin_client_, account, refusing_server
):
    from integrations.bluesky import options as bluesky_options

    page = admin_client_.get("/admin/api-integration/bluesky").content.decode()
    assert 'name="other_servers"' in page
    version = re.search(r'name="version" value="([0-9a-f]*)"', page)[1]
    response = admin_client_.post(
        "/admin/api-integration/bluesky",
        {"service_url": "", "status": "enabled", "other_servers": "allow", "version": version, "_save": "Save"},
    )
    assert response.status_code == 302
    assert bluesky_options.other_servers_allowed()
    text = run_test_connection(admin_client_, refusing_server, account.handle)
    assert '<strong id="account-can-sign-in">yes</strong>' in text


def test_a_document_handle_that_is_not_a_handle_is_never_taken(zone, web):
    body = json.loads(document("did:web:carol.example", "carol.example"))
    body["alsoKnownAs"] = ["at://" + "x" * 300 + ".example", "at://not a handle", "at://carol.example"]
    web.files[("carol.example", "/.well-known/did.json")] = (200, json.dumps(body).encode())
    web.files[("carol.example", "/.well-known/atproto-did")] = (200, b"did:web:carol.example")
    found = resolution.resolve_identity("did:web:carol.example")
    assert isinstance(found, resolution.Identity)
    assert (found.handle, found.handle_verified) == ("carol.example", True)


def test_a_handle_lookup_that_times_out_is_unknown_not_unverified(zone, web, monkeypatch):
    web.files[("dave.example", "/.well-known/did.json")] = (200, document("did:web:dave.example", "dave.example"))
    answering = resolution._well_known_did
    monkeypatch.setattr(
        resolution, "_well_known_did", lambda handle: resolution.Failure("unresolved", handle, "ReadTimeout", True)
    )
    found = resolution.resolve_identity("did:web:dave.example")
    assert isinstance(found, resolution.Identity) and found.handle_verified is None
    monkeypatch.setattr(resolution, "_well_known_did", answering)
    web.files[("dave.example", "/.well-known/atproto-did")] = (404, b"")
    found = resolution.resolve_identity("did:web:dave.example", fresh=True)  # a 404 is an answer: not verified
    assert isinstance(found, resolution.Identity) and found.handle_verified is False


def test_a_posts_mentions_are_looked_up_at_once_and_never_wait_past_the_deadline(zone, monkeypatch):
    import threading
    import time

    started = threading.Barrier(3, timeout=5)  # all three lookups run at the same time, or this breaks

    def slow_lookup(handle, fresh=False):
        started.wait()
        if handle == "never.example":
            time.sleep(3)
        return f"did:plc:{handle.split('.')[0]:a<24}"

    monkeypatch.setattr(resolution, "lookup_handle", slow_lookup)
    begun = time.monotonic()
    found = resolution.lookup_handles(["one.example", "two.example", "never.example", "one.example"], deadline=1.0)
    assert time.monotonic() - begun < 2.5
    assert found["one.example"] == "did:plc:oneaaaaaaaaaaaaaaaaaaaaa" and found["two.example"].startswith("did:plc:two")
    assert isinstance(found["never.example"], resolution.Failure) and found["never.example"].transient


@pytest.mark.parametrize("did", ["did:plc:abc:", "did:plc:abc%"])
def test_a_txt_record_or_well_known_answer_that_is_no_did_by_the_spec_is_invalid(zone, web, did):
    zone.txt["_atproto.txt.example"] = [f"did={did}"]
    web.files[("web.example", "/.well-known/atproto-did")] = (200, did.encode())
    for handle in ("txt.example", "web.example"):
        found = resolution.lookup_handle(handle)
        assert isinstance(found, resolution.Failure) and found.kind == "invalid", (handle, found)


# --- what could not be checked, in words; settings that change the answers ----------------------------------------
@pytest.mark.django_db
def test_test_connection_says_what_it_could_not_check_in_words_and_never_no_when_it_does_not_know(
    zone, plc, admin_client_, account, monkeypatch
):
    monkeypatch.setattr(resolution, "WEB_BASE", "http://{host}:9")  # the handle's web server does not answer
    text = run_test_connection(admin_client_, plc.url, account.handle)
    assert (
        f'id="account-problem">{account.handle} could not be looked up: DNS has no _atproto.{account.handle} TXT '
        f"record; http://{account.handle}:9/.well-known/atproto-did could not be reached. This can be temporary: "
        "test again in a minute.</p>"
    ) in text
    assert '<strong id="account-can-sign-in">not known</strong>' in text
    assert not re.search(r"\b[A-Z][a-z]+(Error|Timeout|Exception)\b", text)  # no exception class names

    # Its DID, whose document names the handle: the handle could not be checked, and the page says why.
    text = run_test_connection(admin_client_, plc.url, account.did)
    assert '<strong id="account-verified">not checked</strong>' in text
    assert f"http://{account.handle}:9/.well-known/atproto-did could not be reached" in text
    assert '<strong id="account-can-sign-in">yes</strong>' in text


def test_a_host_that_does_not_exist_is_an_answer_not_a_temporary_fault(zone, web, monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "nowhere.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    web.files[("erin.example", "/.well-known/did.json")] = (200, document("did:web:erin.example", "nowhere.example"))
    found = resolution.lookup_handle("nowhere.example")
    assert isinstance(found, resolution.Failure) and not found.transient
    assert "nowhere.example does not exist" in found.detail
    verified = resolution.resolve_identity("did:web:erin.example")
    assert isinstance(verified, resolution.Identity) and verified.handle_verified is False  # not "try again"
    assert "nowhere.example does not exist" in verified.handle_problem


def test_a_handle_on_a_local_pds_is_verified_in_development_through_that_server(pds, zone, settings, monkeypatch):
    """No DNS record, and https://<handle> answers nothing: a local Service URL (development) is asked instead."""
    account = pds.create_account()
    monkeypatch.setattr(resolution, "WEB_BASE", "https://{host}")  # as in production
    settings.INTEGRATIONS_PLC_URL = pds.plc_url
    settings.INTEGRATIONS_BLUESKY_SERVICE_URL = ""
    found = resolution.resolve_identity(account.did)
    assert isinstance(found, resolution.Identity) and found.handle_verified is None  # https://<handle>: no answer

    settings.INTEGRATIONS_BLUESKY_SERVICE_URL = pds.url  # a local PDS: http://127.0.0.1:<port>
    found = resolution.resolve_identity(account.did)  # the cache does not answer for other settings
    assert isinstance(found, resolution.Identity)
    assert (found.handle, found.handle_verified) == (account.handle, True)
    missing = resolution.lookup_handle("nobody-there.test")
    assert isinstance(missing, resolution.Failure) and "does not host it" in missing.detail


def test_a_local_server_is_never_asked_with_the_guard_on(settings):
    settings.INTEGRATIONS_BLUESKY_SERVICE_URL = "http://127.0.0.1:2583"
    assert resolution.local_server() == "http://127.0.0.1:2583"
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    assert resolution.local_server() is None
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    settings.INTEGRATIONS_BLUESKY_SERVICE_URL = "https://bsky.social"  # a public server is no local one
    assert resolution.local_server() is None


def test_a_failure_cached_under_old_settings_is_not_the_answer_under_fixed_ones(zone, plc, at_pds, settings):
    account = plc.create_account()
    settings.INTEGRATIONS_PLC_URL = "http://127.0.0.1:9"  # wrong: nothing answers there
    broken = resolution.resolve_identity(account.did)
    assert isinstance(broken, resolution.Failure) and broken.transient
    settings.INTEGRATIONS_PLC_URL = plc.plc_url  # fixed: answered at once, not a minute later
    found = resolution.resolve_identity(account.did)
    assert isinstance(found, resolution.Identity) and found.handle_verified is True

    other = serving_zone()
    with other as second:  # another DNS server: its answer, not the first one's cached failure
        assert isinstance(resolution.lookup_handle("dns-only.example"), resolution.Failure)
        second.txt["_atproto.dns-only.example"] = [f"did={account.did}"]
        settings.INTEGRATIONS_DNS_NAMESERVERS = [second.address]
        assert resolution.lookup_handle("dns-only.example") == account.did


# --- deadlines: the work ends, not only the wait ----------------------------------------------------------------------
@pytest.fixture
def silent_dns() -> Iterator[str]:
    """A name server on loopback that never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def lookup_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("handles")]


def test_mention_lookups_past_their_deadline_leave_no_thread_behind(settings, monkeypatch, silent_dns, drip):  # noqa: F811
    """A name server that never answers, then well-known files that drip a byte every two seconds: three posts'
    worth of lookups end with their deadline, and so do their threads."""
    import time

    settings.INTEGRATIONS_DNS_NAMESERVERS = [silent_dns]
    monkeypatch.setattr(resolution, "WEB_BASE", "http://{host}:" + drip.rsplit(":", 1)[1])
    earlier = set(lookup_threads())  # another test's may still be sleeping

    def ours() -> list[threading.Thread]:
        return [thread for thread in lookup_threads() if thread not in earlier]

    for _ in range(3):
        found = resolution.lookup_handles(["slow1.example", "slow2.example", "slow3.example"], deadline=1.0)
        assert all(isinstance(answer, resolution.Failure) and answer.transient for answer in found.values())
    until = time.monotonic() + 1.5
    while ours() and time.monotonic() < until:
        time.sleep(0.05)
    assert ours() == []


def test_a_dripping_well_known_file_ends_within_the_lookups_deadline(zone, monkeypatch, drip):  # noqa: F811
    import time

    monkeypatch.setattr(resolution, "WEB_BASE", "http://{host}:" + drip.rsplit(":", 1)[1])
    monkeypatch.setattr(resolution, "TIMEOUT", 3.0)  # each byte comes sooner than this: only the total ends it
    started = time.monotonic()
    found = resolution.lookup_handle("drip.example")
    assert isinstance(found, resolution.Failure) and found.transient
    assert time.monotonic() - started < 9  # 3 s and a margin, far from the drip's 20


def test_a_handles_well_known_file_is_public_only_even_while_insecure_pds_hosts_are_allowed(
    zone, web, settings, public_only
):
    """A handle is a name a user types: INTEGRATIONS_ALLOW_INSECURE_PDS lets the configured PDS be local, never it."""
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    web.files[("alice.example", "/.well-known/atproto-did")] = (200, b"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
    found = resolution.lookup_handle("alice.example")
    assert isinstance(found, resolution.Failure) and found.kind == "refused"
    assert web.hits == []
