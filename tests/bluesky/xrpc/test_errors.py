"""SDK failures become our errors, and our errors become the words and statuses users see."""

import base64
import inspect
import ipaddress
import json
import re
import socket
import time

import httpx
import pytest
from atproto_client import exceptions as e
from atproto_client.models.common import XrpcError
from atproto_client.request import Response

from integrations.adapter import IntegrationsAdapter, get_adapter, registered_codes
from integrations.bluesky.words import APP_PASSWORDS_URL
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import _usable_pds_endpoint, pds_endpoint_of
from integrations.bluesky.xrpc.errors import translate
from integrations.bluesky.xrpc.tokens import jwt_claims
from integrations.security import outbound


def response(status: int, content=None, headers: dict | None = None) -> Response:
    return Response(success=False, status_code=status, content=content, headers=headers or {})


def xrpc(error: str, message: str = "") -> XrpcError:
    return XrpcError(error=error, message=message)


# --- translate: upstream error codes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "expected", "status", "upstream"),
    [
        (
            e.UnauthorizedError(response(401, xrpc("AuthenticationRequired", "Invalid identifier or password"))),
            errors.InvalidCredentials,
            401,
            "AuthenticationRequired",
        ),
        (
            e.UnauthorizedError(response(401, xrpc("AuthFactorTokenRequired", "A sign in code has been sent"))),
            errors.AuthFactorRequired,
            401,
            "AuthFactorTokenRequired",
        ),
        (
            e.UnauthorizedError(response(401, xrpc("AccountTakedown", "Account has been taken down"))),
            errors.AccountSuspended,
            401,
            "AccountTakedown",
        ),
        (
            e.BadRequestError(response(400, xrpc("AccountDeactivated", "Account is deactivated"))),
            errors.AccountDeactivated,
            400,
            "AccountDeactivated",
        ),
        (
            e.BadRequestError(response(400, xrpc("ExpiredToken", "Token has expired"))),
            errors.SessionRejected,
            400,
            "ExpiredToken",
        ),
        (
            e.BadRequestError(response(400, xrpc("InvalidToken", "Token could not be verified"))),
            errors.SessionRejected,
            400,
            "InvalidToken",
        ),
        (
            e.BadRequestError(response(400, xrpc("InvalidRequest", "Input/handle must be a valid handle"))),
            errors.RequestRejected,
            400,
            "InvalidRequest",
        ),
    ],
)
def test_upstream_error_codes_are_translated(exc, expected, status, upstream):
    translated = translate(exc)
    assert type(translated) is expected
    assert translated.status_code == status
    assert translated.upstream_error == upstream
    assert translated.detail == exc.response.content.message
    assert translated.temporary is False  # a session is only dropped for non-temporary errors


# --- translate: rate limits ---------------------------------------------------------------------------------------
def rate_limited(headers: dict) -> e.RateLimitExceededError:
    return e.RateLimitExceededError(response(429, xrpc("RateLimitExceeded", "Rate Limit Exceeded"), headers))


def test_rate_limit_uses_retry_after():
    translated = translate(rate_limited({"retry-after": "30"}))
    assert type(translated) is errors.RateLimited
    assert translated.retry_after == 30
    assert translated.status_code == 429
    assert translated.temporary is True


def test_rate_limit_uses_ratelimit_reset_when_there_is_no_retry_after():
    reset = int(time.time()) + 60
    translated = translate(rate_limited({"ratelimit-reset": str(reset), "ratelimit-remaining": "0"}))
    assert type(translated) is errors.RateLimited
    assert 55 <= translated.retry_after <= 61


def test_rate_limit_reset_in_the_past_still_waits_a_second():
    translated = translate(rate_limited({"ratelimit-reset": str(int(time.time()) - 10)}))
    assert translated.retry_after == 1


def test_rate_limit_without_headers_has_no_retry_after():
    translated = translate(rate_limited({}))
    assert type(translated) is errors.RateLimited
    assert translated.retry_after is None


def test_rate_limit_with_html_body_is_still_a_rate_limit():
    translated = translate(e.RateLimitExceededError(response(429, b"<html>slow down</html>", {"retry-after": "5"})))
    assert type(translated) is errors.RateLimited
    assert translated.retry_after == 5


# --- translate: server faults and garbage -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "expected", "status"),
    [
        (
            e.RequestException(response(500, xrpc("InternalServerError", "Internal Server Error"))),
            errors.PdsServerError,
            500,
        ),
        (e.RequestException(response(503, xrpc("NotEnoughResources", "Try later"))), errors.PdsServerError, 503),
        (e.RequestException(response(500, b"Internal Server Error")), errors.PdsServerError, 500),
        (e.RequestException(response(503, b"<html>Service Unavailable</html>")), errors.PdsServerError, 503),
        (e.NetworkError(response(502, b"<html>Bad Gateway</html>")), errors.PdsServerError, 502),
        (e.RequestException(response(404, b"<html><body>Not Found</body></html>")), errors.InvalidResponse, 404),
    ],
)
def test_server_faults_are_temporary(exc, expected, status):
    translated = translate(exc)
    assert type(translated) is expected
    assert translated.status_code == status
    assert translated.temporary is True


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (e.NetworkError(), errors.PdsUnreachable),
        (e.InvokeTimeoutError(), errors.PdsTimeout),
        (e.ModelError("x"), errors.InvalidResponse),
        (httpx.ConnectError("connection refused"), errors.PdsUnreachable),
    ],
)
def test_transport_and_shape_failures_are_temporary(exc, expected):
    translated = translate(exc)
    assert type(translated) is expected
    assert translated.temporary is True
    assert translated.status_code is None


def test_our_own_errors_pass_through_unchanged():
    original = errors.IntegrationDisabled()
    assert translate(original) is original


def test_unknown_exceptions_are_not_swallowed():
    with pytest.raises(KeyError):
        translate(KeyError("bug"))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
            errors.InvalidCredentials,
        ),
        (403, {"error": "AccountTakedown", "message": "taken down"}, errors.AccountSuspended),
        (400, {"error": "ExpiredToken", "message": "Token has expired"}, errors.SessionRejected),
        (429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, errors.RateLimited),
        (502, b"<html>Bad Gateway</html>", errors.PdsServerError),
        (404, b"<html>Not Found</html>", errors.InvalidResponse),
    ],
)
def test_translation_of_what_the_sdk_raises_for_a_real_http_response(status, body, expected):
    """Goes through the SDK's own response handling (private API), so a change in the SDK shows up here."""
    from atproto_client.request import _handle_response

    if isinstance(body, dict):
        http_response = httpx.Response(status, json=body)
    else:
        http_response = httpx.Response(status, content=body, headers={"content-type": "text/html"})
    with pytest.raises(e.RequestErrorBase) as excinfo:
        _handle_response(http_response)
    assert type(translate(excinfo.value)) is expected


def test_every_temporary_error_class_is_temporary():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.TemporaryError)]
    assert len(classes) >= 6
    for cls in [*classes, errors.ConnectThrottled]:
        assert cls().temporary is True, cls
    for cls in (errors.InvalidCredentials, errors.SessionRejected, errors.SessionExpired, errors.RequestRejected):
        assert cls().temporary is False, cls


# --- adapter: messages and statuses -------------------------------------------------------------------------------
ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.BlueskyError) and cls is not errors.BlueskyError
]


@pytest.mark.parametrize(
    "cls",
    ERROR_CLASSES,
    ids=lambda cls: cls.__name__,
)
def test_every_error_has_its_own_message(cls):
    described = get_adapter().describe(cls(), service_url="https://pds.example.com")
    assert cls.code in registered_codes()
    assert described.message != IntegrationsAdapter().fallback[1]
    assert described.code == cls.code
    assert "{" not in described.message and "}" not in described.message  # every placeholder was filled


def test_error_classes_were_found():
    assert {errors.InvalidCredentials, errors.RateLimited, errors.RequestRejected} <= set(ERROR_CLASSES)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.IntegrationDisabled(), 403),
        (errors.RateLimited(), 429),
        (errors.ConnectThrottled(), 429),
        (errors.PdsUnreachable(), 503),
        (errors.PdsTimeout(), 503),
        (errors.PdsServerError(), 502),
        (errors.InvalidCredentials(), 400),
        (errors.MainPasswordRefused(), 400),
        (errors.SessionExpired(), 409),
        (errors.AccountSuspended(), 403),
    ],
)
def test_http_statuses(error, status):
    assert get_adapter().describe(error).http_status == status


def test_invalid_credentials_hints_at_another_server_only_off_bsky_social():
    adapter = get_adapter()
    elsewhere = adapter.describe(errors.InvalidCredentials(), service_url="https://pds.example.com").message
    assert "another server" in elsewhere
    assert "https://pds.example.com" in elsewhere
    on_bsky = adapter.describe(errors.InvalidCredentials(), service_url="https://bsky.social").message
    assert "another server" not in on_bsky
    assert "another server" not in adapter.describe(errors.InvalidCredentials()).message
    assert on_bsky.startswith("Bluesky did not accept that handle and app password.")


@pytest.mark.parametrize("error", [errors.MainPasswordRefused(), errors.AuthFactorRequired()])
def test_main_password_messages_point_to_app_passwords(error):
    message = get_adapter().describe(error).message
    assert APP_PASSWORDS_URL == "https://bsky.app/settings/app-passwords"
    assert "https://bsky.app/settings/app-passwords" in message


@pytest.mark.parametrize(
    ("retry_after", "words"),
    [
        (120, "2 minutes"),
        (30, "30 seconds"),
        (60, "a minute"),
        (61, "2 minutes"),
        (5400, "90 minutes"),
        (7200, "2 hours"),
        (None, "a few minutes"),
    ],
)
def test_rate_limited_says_how_long_to_wait(retry_after, words):
    described = get_adapter().describe(errors.RateLimited(retry_after=retry_after))
    assert f"try again in {words}." in described.message
    assert described.retry_after == retry_after
    assert described.http_status == 429


def test_server_messages_name_the_server():
    adapter = get_adapter()
    assert (
        "https://pds.example.com"
        in adapter.describe(errors.PdsUnreachable(), service_url="https://pds.example.com").message
    )
    assert "the configured server" in adapter.describe(errors.PdsTimeout()).message


def test_messages_name_the_server_that_was_called_not_the_configured_one():
    error = errors.PdsUnreachable()
    error.url = "https://morel.us-east.host.bsky.network"
    message = get_adapter().describe(error, service_url="https://bsky.social").message
    assert "https://morel.us-east.host.bsky.network" in message
    assert "bsky.social" not in message


def test_address_refused_names_the_host_only():
    error = errors.AddressRefused()
    error.url = "https://internal.example.com:8443"
    described = get_adapter().describe(error, service_url="https://bsky.social")
    assert described.message.startswith("The server internal.example.com is not at a public network address")
    assert "8443" not in described.message  # the same words for every port
    assert described.http_status == 502


def _wrapped(exc: BaseException) -> Exception:
    """`exc` as it reaches translate() after httpx and the SDK wrapped it."""
    try:
        try:
            raise exc
        except BaseException as inner:
            raise httpx.ConnectError("connect failed") from inner
    except httpx.ConnectError as middle:
        try:
            raise e.NetworkError() from middle
        except e.NetworkError as outer:
            return outer


@pytest.mark.parametrize("wrap", [lambda exc: exc, _wrapped], ids=["bare", "wrapped"])
def test_an_outbound_refusal_becomes_address_refused(wrap):
    translated = translate(wrap(outbound.OutboundRefused("internal.example.com")))
    assert type(translated) is errors.AddressRefused
    assert translated.temporary is False
    assert "internal.example.com" in translated.detail


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_answer_is_a_clear_error_not_a_temporary_one(status):
    translated = translate(e.RequestException(response(status, b"", {"location": "http://127.0.0.1/admin/"})))
    assert type(translated) is errors.Redirected
    assert translated.temporary is False
    assert translated.status_code == status
    assert "redirect" in get_adapter().describe(translated).message


def test_request_rejected_shows_the_upstream_detail():
    message = get_adapter().describe(errors.RequestRejected("Input/handle must be a valid handle")).message
    assert message == "The Bluesky server refused the request: Input/handle must be a valid handle"


class ShoutingAdapter(IntegrationsAdapter):
    messages = {**IntegrationsAdapter.messages, "rate_limited": (503, "SLOW DOWN for {retry}")}


def test_projects_can_replace_the_words(settings):
    settings.INTEGRATIONS_ADAPTER = "tests.bluesky.xrpc.test_errors.ShoutingAdapter"
    described = get_adapter().describe(errors.RateLimited(retry_after=120))
    assert (described.message, described.http_status) == ("SLOW DOWN for 2 minutes", 503)


# --- jwt_claims ---------------------------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_jwt_claims_reads_the_payload():
    header = b64(json.dumps({"alg": "ES256K"}).encode())
    payload = b64(json.dumps({"scope": "com.atproto.appPass", "exp": 1}).encode())
    token = f"{header}.{payload}.signature"
    assert jwt_claims(token) == {"scope": "com.atproto.appPass", "exp": 1}


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "", "a.!!!.c", f"a.{b64(b'not json')}.c", f"a.{b64(b'[1, 2]')}.c", "a.é.c"],
)
def test_jwt_claims_refuses_a_non_jwt(token):
    with pytest.raises(errors.InvalidResponse):
        jwt_claims(token)


# --- pds_endpoint_of ------------------------------------------------------------------------------------------------
def did_doc(*services) -> dict:
    return {"id": "did:plc:abc", "service": list(services)}


def test_pds_endpoint_is_picked_from_the_did_document():
    doc = did_doc(
        {"id": "#atproto_labeler", "type": "AtprotoLabeler", "serviceEndpoint": "https://labeler.example.com"},
        {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://PDS.Example.com/"},
    )
    assert pds_endpoint_of(doc) == "https://pds.example.com"


def test_pds_endpoint_accepts_a_fully_qualified_service_id():
    doc = did_doc({"id": "did:plc:abc#atproto_pds", "serviceEndpoint": "https://pds.example.com"})
    assert pds_endpoint_of(doc) == "https://pds.example.com"


@pytest.mark.parametrize(
    "doc",
    [
        None,
        "did:plc:abc",
        {},
        {"service": None},
        did_doc(),
        did_doc({"id": "#atproto_labeler", "serviceEndpoint": "https://labeler.example.com"}),
        did_doc({"id": "#atproto_pds"}),
        did_doc({"id": "#atproto_pds", "serviceEndpoint": "ftp://pds.example.com"}),
        did_doc({"id": "#atproto_pds", "serviceEndpoint": "not a url"}),
        did_doc("#atproto_pds"),
    ],
)
def test_pds_endpoint_is_none_when_missing_or_invalid(doc):
    assert pds_endpoint_of(doc) is None


def pds_doc(endpoint: str) -> dict:
    return did_doc({"id": "#atproto_pds", "serviceEndpoint": endpoint})


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("https://127.0.0.1:2583", "not a public address"),
        ("https://[::ffff:10.0.0.1]", "not a public address"),
        ("http://pds.example.com", "http scheme is not allowed"),
        ("https://resolves-to-loopback.example.com", "not a public address"),
        ("https://does-not-resolve.example.com", "its host does not resolve"),
    ],
)
def test_did_document_endpoint_is_refused_in_production_and_says_why(settings, monkeypatch, endpoint, reason):
    def resolve(host, port):
        if host == "does-not-resolve.example.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address("127.0.0.1" if host.startswith("resolves-to") else host)]

    monkeypatch.setattr(outbound, "resolve", resolve)
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    usable, refused = _usable_pds_endpoint(pds_doc(endpoint))
    assert usable is None
    assert reason in refused
    assert "calls go to the Service URL" in refused


def test_did_document_endpoint_on_public_addresses_is_used(settings, monkeypatch):
    monkeypatch.setattr(outbound, "resolve", lambda host, port: [ipaddress.ip_address("1.1.1.1")])
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    assert _usable_pds_endpoint(pds_doc("https://pds.example.com/")) == ("https://pds.example.com", "")
    assert _usable_pds_endpoint(did_doc()) == (None, "")


def test_did_document_endpoint_is_not_checked_when_insecure_hosts_are_allowed(settings):
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    assert _usable_pds_endpoint(pds_doc("http://localhost:2583/")) == ("http://localhost:2583", "")


def readme_error_table() -> dict[str, int]:
    """The README's table of API error codes (REST API section): code -> HTTP status, as a reader finds it."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    header = readme.index("| status | codes | what they mean |")
    table: dict[str, int] = {}
    for line in readme[header:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        status, codes = (cell.strip() for cell in line.strip("|").split("|")[:2])
        for code in re.findall(r"`([a-z_]+)`", codes):
            assert code not in table, f"{code} is listed twice in the README"
            table[code] = int(status)
    return table


def api_error_table() -> dict[str, int]:
    """Every code the API can answer with and its status, from the code: the adapter's table (what the providers
    registered) and the API's own errors (DRF's exceptions, reshaped by `integrations.api.exceptions`)."""
    from rest_framework import exceptions as drf

    from integrations.api.exceptions import RequestTooLarge

    table = {code: get_adapter().message_for(code)[0] for code in registered_codes()}
    for exception in (*(c for _, c in inspect.getmembers(drf, inspect.isclass)), RequestTooLarge):
        if issubclass(exception, drf.APIException) and exception is not drf.APIException:
            assert table.setdefault(exception.default_code, exception.status_code) == exception.status_code
    return table


def test_the_readme_error_table_is_the_codes_table():
    """The README lists every error code the API answers with, under the status the code gives it: a new code, a
    moved status or a README edit that disagrees fails here (issue 23: four codes were listed under wrong ones)."""
    readme, code = readme_error_table(), api_error_table()
    assert {c: s for c, s in readme.items() if code.get(c) != s} == {}, "README rows that disagree with the code"
    assert sorted(set(code) - set(readme)) == [], "codes missing from the README's table"
    for name, status in (
        ("invalid_credentials", 400),
        ("main_password_refused", 400),
        ("auth_factor_required", 400),
        ("account_deactivated", 403),
        ("account_suspended", 403),
    ):
        assert readme[name] == status
