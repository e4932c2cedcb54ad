"""PDS service URL and login identifier validation (admin form, env check, connect form)."""

import pytest
from django.core.exceptions import ValidationError

from integrations.bluesky.identity.identifiers import normalize_identifier
from integrations.bluesky.xrpc.servers import normalize_service_url


@pytest.fixture(autouse=True)
def _strict_pds(settings):
    """The test settings allow insecure PDS URLs (for the local PDS); production does not."""
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False


def refusal(value: str, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as excinfo:
        normalize_service_url(value, **kwargs)
    return excinfo.value


# --- normalize_service_url: accepted ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://pds.example.com/", "https://pds.example.com"),
        ("https://pds.example.com", "https://pds.example.com"),
        ("https://pds.example.com//", "https://pds.example.com"),
        ("  https://pds.example.com/  ", "https://pds.example.com"),
        ("HTTPS://PDS.Example.COM/", "https://pds.example.com"),
        ("https://pds.example.com/Some/Path/", "https://pds.example.com/Some/Path"),
        ("https://pds.example.com:8443/", "https://pds.example.com:8443"),
        ("https://pds.example.com:443", "https://pds.example.com:443"),
        ("https://[2606:4700:4700::1111]/", "https://[2606:4700:4700::1111]"),
        ("https://[2606:4700:4700::1111]:8443/xrpc/", "https://[2606:4700:4700::1111]:8443/xrpc"),
        ("https://8.8.8.8", "https://8.8.8.8"),
    ],
)
def test_service_url_is_normalised(value, expected):
    assert normalize_service_url(value) == expected
    assert normalize_service_url(expected) == expected  # idempotent


# --- normalize_service_url: refused -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "code", "says"),
    [
        ("", "required", "Enter the PDS URL"),
        ("   ", "required", "Enter the PDS URL"),
        ("ftp://pds.example.com", "scheme", "must start with https://"),
        ("pds.example.com", "scheme", "must start with https://"),
        ("https://", "host", "needs a host name"),
        ("https:///xrpc", "host", "needs a host name"),
        ("https://user:secret@pds.example.com", "credentials", "user name and password"),
        ("https://user@pds.example.com", "credentials", "user name and password"),
        ("https://pds.example.com/?a=1", "query", "query string or fragment"),
        ("https://pds.example.com?", "query", "query string or fragment"),
        ("https://pds.example.com/#top", "query", "query string or fragment"),
        ("https://pds.example.com#", "query", "query string or fragment"),
        ("https://pds.example.com:99999", "invalid", "not a valid URL"),
        ("https://[::1", "invalid", "not a valid URL"),
        ("http://pds.example.com", "insecure", "must use https://"),
        ("https://pds.example.com:0", "port", "Port 0"),
    ],
)
def test_bad_service_url_is_refused_with_a_clear_message(value, code, says):
    error = refusal(value)
    assert error.code == code
    assert says in " ".join(error.messages)


@pytest.mark.parametrize(
    "value",
    [
        "https://localhost",
        "https://LOCALHOST:2583/",
        "https://pds.localhost",
        "https://printer.local",
        "https://127.0.0.1",
        "https://127.0.0.1:2583",
        "https://10.0.0.5",
        "https://172.16.0.1",
        "https://192.168.1.10",
        "https://169.254.169.254",
        "https://0.0.0.0",
        "https://[::1]",
        "https://[fd00::1]",
        "https://[::ffff:127.0.0.1]",
        "https://[::127.0.0.1]",  # IPv4-compatible
        "https://[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
        "https://[64:ff9b::a00:5]",  # NAT64 of 10.0.0.5
        "https://224.0.0.1",
        "https://[ff02::1]",
        "https://[ff0e::1]",
        "https://100.64.0.1",
        "https://[fec0::1]",
    ],
)
def test_loopback_and_private_hosts_are_refused(value):
    error = refusal(value)
    assert error.code == "private_host"
    assert "Loopback and private network addresses are not allowed" in " ".join(error.messages)


@pytest.mark.parametrize(
    "value",
    ["https://127.1", "https://2130706433", "https://0x7f.1", "https://017700000001", "https://localhost."],
)
def test_numeric_ipv4_shorthands_for_loopback_are_refused(value):
    assert refusal(value).code == "private_host"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://localhost:2583/", "http://localhost:2583"),
        ("http://127.0.0.1:2583", "http://127.0.0.1:2583"),
        ("https://[::1]:2583/", "https://[::1]:2583"),
        ("http://pds.example.com", "http://pds.example.com"),
    ],
)
def test_insecure_urls_accepted_when_allowed_explicitly(value, expected):
    assert normalize_service_url(value, allow_insecure=True) == expected


def test_insecure_urls_accepted_when_the_setting_allows_them(settings):
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    assert normalize_service_url("http://localhost:2583/") == "http://localhost:2583"


def test_explicit_refusal_wins_over_the_setting(settings):
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    assert refusal("http://localhost:2583", allow_insecure=False).code == "insecure"
    assert refusal("https://localhost:2583", allow_insecure=False).code == "private_host"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("ftp://localhost", "scheme"),
        ("http://user:pw@localhost:2583", "credentials"),
        ("http://localhost:2583/?x=1", "query"),
        ("http://", "host"),
    ],
)
def test_insecure_mode_still_refuses_malformed_urls(value, code):
    assert refusal(value, allow_insecure=True).code == code


# --- normalize_identifier -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice.bsky.social", "alice.bsky.social"),
        ("  alice.bsky.social  ", "alice.bsky.social"),
        ("@alice.bsky.social", "alice.bsky.social"),
        ("  @Alice.Bsky.Social ", "alice.bsky.social"),
        ("@ alice.bsky.social", "alice.bsky.social"),
        ("ALICE.EXAMPLE.COM", "alice.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("Alice@Example.com", "Alice@Example.com"),
        (" alice@example.com ", "alice@example.com"),
        ("did:plc:ewvi7nxzyoun6zhxrhs64oiz", "did:plc:ewvi7nxzyoun6zhxrhs64oiz"),
        ("did:web:example.com", "did:web:example.com"),
    ],
)
def test_identifier_is_normalised(value, expected):
    assert normalize_identifier(value) == expected


@pytest.mark.parametrize(
    ("value", "code", "says"),
    [
        ("", "required", "Enter your Bluesky handle"),
        ("   ", "required", "Enter your Bluesky handle"),
        ("@", "required", "Enter your Bluesky handle"),
        ("alice", "invalid_handle", "use the full handle, e.g. alice.bsky.social"),
        ("a b.com", "invalid_handle", "not a valid Bluesky handle"),
        ("alice.bsky.social.", "invalid_handle", "not a valid Bluesky handle"),
        ("-alice.bsky.social", "invalid_handle", "not a valid Bluesky handle"),
        ("alice.123", "invalid_handle", "not a valid Bluesky handle"),
        ("alice@", "invalid_email", "email address is not valid"),
        ("did:plc:", "invalid_did", "DID is not valid"),
        ("did:plc:abc def", "invalid_did", "DID is not valid"),
    ],
)
def test_bad_identifier_is_refused_with_a_clear_message(value, code, says):
    with pytest.raises(ValidationError) as excinfo:
        normalize_identifier(value)
    assert excinfo.value.code == code
    assert says in " ".join(excinfo.value.messages)


def test_only_one_leading_at_sign_is_removed():
    with pytest.raises(ValidationError):
        normalize_identifier("@@alice.bsky.social")


@pytest.mark.parametrize("value", ["https://pds example.com", "https://a..b", "https://-bad-.com"])
def test_malformed_host_names_are_refused(value):
    error = refusal(value)
    assert error.code in ("host", "invalid")
    assert "not a valid" in " ".join(error.messages)


def test_double_at_sign_gets_the_handle_message():
    with pytest.raises(ValidationError) as info:
        normalize_identifier("@@alice.bsky.social")
    assert "not a valid Bluesky handle" in " ".join(info.value.messages)
