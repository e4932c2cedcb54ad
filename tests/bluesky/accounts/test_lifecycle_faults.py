"""HTTP-layer faults on refreshSession (with respx in front of the real local PDS): a temporary fault never touches
the stored session, marks the channel degraded with a retry time, and tells the user nothing was changed."""

import time
from datetime import timedelta

import httpx
import pytest
import respx
from django.db import connection
from django.utils import timezone

from integrations.adapter import get_adapter
from integrations.bluesky import services
from integrations.bluesky.accounts import door
from integrations.bluesky.xrpc import errors
from integrations.models import Channel, ChannelEvent
from tests.conftest import stored

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

REFRESH_SESSION = r".*/xrpc/com\.atproto\.server\.refreshSession"
GET_SESSION = r".*/xrpc/com\.atproto\.server\.getSession"

INTERNAL = {"error": "InternalServerError", "message": "Internal Server Error"}
RATE_LIMITED = {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
HTML_PAGE = "<!doctype html><html><head><title>Oops</title></head><body><h1>Something broke</h1></body></html>"


def html_error(status: int) -> httpx.Response:
    return httpx.Response(status, html=f"<html><body><h1>{status} Bad Gateway</h1><hr>nginx</body></html>")


# (route arguments, built when the test runs; the user-facing error code; the retry delay in seconds it implies)
FAULTS = [
    pytest.param(lambda: {"side_effect": httpx.ReadTimeout}, "pds_timeout", None, id="read-timeout"),
    pytest.param(lambda: {"side_effect": httpx.ConnectTimeout}, "pds_timeout", None, id="connect-timeout"),
    pytest.param(lambda: {"side_effect": httpx.ConnectError}, "pds_unreachable", None, id="connect-error"),
    pytest.param(lambda: {"side_effect": httpx.ReadError}, "pds_unreachable", None, id="connection-reset"),
    pytest.param(lambda: {"side_effect": httpx.RemoteProtocolError}, "pds_unreachable", None, id="protocol-error"),
    pytest.param(lambda: {"return_value": httpx.Response(500, json=INTERNAL)}, "pds_error", None, id="500-json"),
    pytest.param(lambda: {"return_value": html_error(500)}, "pds_error", None, id="500-html"),
    pytest.param(lambda: {"return_value": httpx.Response(502, json=INTERNAL)}, "pds_error", None, id="502-json"),
    pytest.param(lambda: {"return_value": html_error(502)}, "pds_error", None, id="502-html"),
    pytest.param(lambda: {"return_value": httpx.Response(503, json=INTERNAL)}, "pds_error", None, id="503-json"),
    pytest.param(lambda: {"return_value": html_error(503)}, "pds_error", None, id="503-html"),
    pytest.param(
        lambda: {"return_value": httpx.Response(429, json=RATE_LIMITED, headers={"Retry-After": "120"})},
        "rate_limited",
        120,
        id="429-retry-after",
    ),
    pytest.param(
        lambda: {
            "return_value": httpx.Response(
                429,
                json=RATE_LIMITED,
                headers={
                    "RateLimit-Limit": "30",
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(int(time.time()) + 90),
                },
            )
        },
        "rate_limited",
        90,
        id="429-ratelimit-reset",
    ),
    pytest.param(
        lambda: {
            "return_value": httpx.Response(
                200, content=b'{"accessJwt": "eyJ', headers={"content-type": "application/json; charset=utf-8"}
            )
        },
        "invalid_response",
        None,
        id="200-invalid-json",
    ),
    pytest.param(
        lambda: {"return_value": httpx.Response(200, html=HTML_PAGE)}, "invalid_response", None, id="200-html"
    ),
]


def raw_session_columns(channel: Channel) -> tuple:
    """The session columns exactly as stored (ciphertext: any rewrite of a token would change it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT access_jwt, refresh_jwt, session_generation, access_expires_at, refresh_expires_at "
            f"FROM {Channel._meta.db_table} WHERE id = %s",
            [channel.pk],
        )
        return cursor.fetchone()


@pytest.mark.parametrize(("fault", "code", "retry_after"), FAULTS)
def test_temporary_fault_on_refresh_keeps_the_session_and_a_later_refresh_recovers(
    channel, pds, account, fault, code, retry_after
):
    before = stored(channel)
    raw_before = raw_session_columns(channel)

    with respx.mock(assert_all_called=False) as respx_mock:
        refresh_route = respx_mock.post(url__regex=REFRESH_SESSION).mock(**fault())
        respx_mock.route().pass_through()
        with pytest.raises(errors.BlueskyError) as caught:
            services.refresh_channel(channel)
        started = timezone.now()
        assert refresh_route.call_count == 1

    exc = caught.value
    assert exc.temporary is True
    assert exc.code == code
    assert pds.refresh_count(account.did) == 0

    # Nothing about the session changed, down to the stored bytes.
    assert raw_session_columns(channel) == raw_before
    row = stored(channel)
    assert (row.access_jwt, row.refresh_jwt, row.session_generation) == (
        before.access_jwt,
        before.refresh_jwt,
        before.session_generation,
    )
    assert row.status == Channel.Status.DEGRADED
    assert row.last_error_code == code
    expected_delay = retry_after or door.DEFAULT_RETRY_DELAY
    assert row.next_retry_at is not None
    assert (row.next_retry_at - started).total_seconds() == pytest.approx(expected_delay, abs=5)
    assert exc.retry_after == pytest.approx(expected_delay, abs=5)
    failure = ChannelEvent.objects.get(channel_id=channel.pk, kind=ChannelEvent.Kind.REFRESH_FAILED)
    assert failure.error_code == code
    health = services.health(row)
    assert health.state == "degraded"
    assert "Nothing is lost" in health.advice

    described = get_adapter().describe(exc)
    assert described.code == code
    assert "try again" in described.message.lower()
    if code != "invalid_response":
        assert "Nothing was changed" in described.message
    if code == "rate_limited":
        assert described.http_status == 429
        assert "try again in 2 minutes" in described.message
        assert described.retry_after == pytest.approx(retry_after, abs=5)

    # The fault is gone: a later refresh rotates the untouched session and the channel is active again.
    if code == "rate_limited":
        # A user-initiated refresh still honours the PDS's delay, without asking the PDS again.
        with pytest.raises(errors.TemporaryError) as waiting:
            services.refresh_channel(channel)
        assert waiting.value.code == "rate_limited"
        assert 0 < waiting.value.retry_after <= retry_after + 5
        assert pds.refresh_count(account.did) == 0
        assert door.refresh(channel, force=True, ignore_retry_time=True) is True
    else:
        services.refresh_channel(channel)

    assert pds.refresh_count(account.did) == 1
    recovered = stored(channel)
    assert recovered.status == Channel.Status.ACTIVE
    assert recovered.refresh_jwt != before.refresh_jwt
    assert recovered.session_generation == before.session_generation + 1
    assert recovered.next_retry_at is None
    assert recovered.last_error_code == ""
    assert services.health(recovered).state == "active"


def test_expired_token_on_the_first_call_leads_to_one_refresh_and_a_successful_replay(channel, pds, account):
    before = stored(channel)
    answers = iter([httpx.Response(401, json={"error": "ExpiredToken", "message": "Token has expired"})])

    invocations = []

    def expired_once(request):
        return next(answers, request)  # then the request itself: pass it through to the PDS

    def fn(client, token):
        invocations.append(token)
        return client.get_session(token)

    # (respx counts a passed-through request twice, so the calls are counted here instead.)
    with respx.mock(assert_all_called=False) as respx_mock:
        respx_mock.get(url__regex=GET_SESSION).mock(side_effect=expired_once)
        respx_mock.route().pass_through()
        result = door.call(channel, fn)

    assert next(answers, None) is None  # the 401 was served
    assert len(invocations) == 2  # the call and one replay
    assert result["did"] == account.did
    assert pds.refresh_count(account.did) == 1
    after = stored(channel)
    assert after.refresh_jwt != before.refresh_jwt
    assert after.session_generation == before.session_generation + 1
    assert after.status == Channel.Status.ACTIVE
    assert invocations == [before.access_jwt, after.access_jwt]
    assert channel.access_jwt == after.access_jwt


def test_fault_on_a_proactive_refresh_keeps_the_session(channel, pds, account):
    """The access token has run out and the refresh hits a 503 with Retry-After: the call fails as temporary,
    the session is kept as it was, and the retry waits as long as the server asked."""
    channel.access_expires_at = timezone.now() - timedelta(minutes=1)
    channel.save()
    raw_before = raw_session_columns(channel)

    with respx.mock(assert_all_called=False) as respx_mock:
        respx_mock.post(url__regex=REFRESH_SESSION).mock(
            return_value=httpx.Response(503, json=INTERNAL, headers={"Retry-After": "120"})
        )
        respx_mock.route().pass_through()
        with pytest.raises(errors.BlueskyError) as caught:
            door.call(channel, lambda client, token: client.get_session(token))
    assert caught.value.temporary is True
    assert caught.value.retry_after == 120

    assert raw_session_columns(channel) == raw_before
    row = stored(channel)
    assert row.status == Channel.Status.DEGRADED
    assert (row.next_retry_at - timezone.now()).total_seconds() == pytest.approx(120, abs=10)
    assert services.health(row).state == "degraded"
    assert pds.refresh_count(account.did) == 0


# --- A fault must never cost a working session ---------------------------------------------------------------
def test_call_still_uses_a_valid_token_when_a_proactive_refresh_hits_a_fault(channel, account):
    channel.access_expires_at = timezone.now() + timedelta(minutes=4)  # within the margin, but still valid
    channel.save()
    access_jwt = channel.access_jwt

    with respx.mock(assert_all_called=False) as respx_mock:
        respx_mock.post(url__regex=REFRESH_SESSION).mock(return_value=httpx.Response(503, json=INTERNAL))
        respx_mock.route().pass_through()
        assert door.call(channel, lambda client, token: client.get_session(token))["did"] == account.did
    # And once the fault is gone, within the retry window.
    assert door.call(channel, lambda client, token: client.get_session(token))["did"] == account.did
    assert stored(channel).access_jwt == access_jwt


def test_bare_401_page_from_a_proxy_keeps_the_session(channel, pds, account):
    raw_before = raw_session_columns(channel)

    with respx.mock(assert_all_called=False) as respx_mock:
        respx_mock.post(url__regex=REFRESH_SESSION).mock(
            return_value=httpx.Response(401, html="<html><body><h1>401 Authorization Required</h1></body></html>")
        )
        respx_mock.route().pass_through()
        with pytest.raises(errors.BlueskyError) as caught:
            services.refresh_channel(channel)

    assert pds.refresh_count(account.did) == 0  # the PDS never saw the refresh token
    assert caught.value.temporary is True
    assert raw_session_columns(channel) == raw_before
    assert stored(channel).status == Channel.Status.DEGRADED
