"""Whatever a PDS sends: a clear error, nothing half-saved, never a 500.

Values that come from upstream are checked where they enter (`client.PdsClient._session`, `get_profile`,
`_retry_after`): lengths, characters, dates and delays are bounded, a session for another account is refused.
Answers a real PDS will not give on demand are served by respx; everything else goes to the local PDS.
"""

import base64
import json
import time
from datetime import timedelta

import httpx
import pytest
import respx
from django.conf import settings as django_settings
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from integrations.adapter import describe
from integrations.bluesky import services
from integrations.bluesky.accounts import door
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.errors import MAX_RETRY_AFTER
from integrations.exceptions import IntegrationError
from integrations.models import Channel, ChannelEvent
from tests.conftest import as_if_refreshed_long_ago, stored

CREATE_SESSION = r".*/xrpc/com\.atproto\.server\.createSession"
REFRESH_SESSION = r".*/xrpc/com\.atproto\.server\.refreshSession"
GET_RECORD = r".*/xrpc/com\.atproto\.repo\.getRecord"
RESOLVE_HANDLE = r".*/xrpc/com\.atproto\.identity\.resolveHandle"
DID = "did:plc:abcdefghijklmnopqrstuvwx"


def jwt(**claims) -> str:
    def part(data) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256K', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def session_answer(**overrides) -> dict:
    now = int(time.time())
    answer = {
        "accessJwt": jwt(scope="com.atproto.appPass", sub=DID, exp=now + 7200),
        "refreshJwt": jwt(scope="com.atproto.refresh", sub=DID, exp=now + 90 * 86400),
        "did": DID,
        "handle": "alice.test",
        "active": True,
    }
    answer.update(overrides)
    return answer


# --- a profile record of any shape ------------------------------------------------------------------------------
@pytest.mark.pds
@pytest.mark.django_db
@pytest.mark.parametrize(
    "record",
    [
        {"avatar": {"$type": "blob", "ref": {"$link": 12}, "mimeType": "image/png", "size": 1}},
        {"avatar": {"$type": "blob", "ref": "../../admin/"}},
        {"avatar": "not a blob"},
        {"avatar": {"$type": "blob", "ref": {"$link": "bafkrei" + "a" * 5000}}},
        {"displayName": "Ali\x00ce", "description": "bio\x00 with NUL"},
        {"displayName": "A" * 10_000, "description": "B" * 100_000},
        {"displayName": ["not", "text"], "description": {"nested": True}},
    ],
    ids=["link-not-text", "ref-not-a-cid", "avatar-not-a-blob", "cid-too-long", "nul", "too-long", "wrong-types"],
)
def test_a_malformed_profile_never_fails_a_connect_or_a_refresh(record, use_pds, user, account):
    body = {"uri": f"at://{account.did}/app.bsky.actor.profile/self", "value": record}
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=GET_RECORD).mock(return_value=httpx.Response(200, json=body))
        mock.route().pass_through()
        channel = services.connect(user, account.handle, account.app_passwords[0])
        as_if_refreshed_long_ago(channel)
        services.refresh_channel(channel)
    row = stored(channel)
    assert row.status == Channel.Status.ACTIVE
    assert row.profile_status in (Channel.ProfileStatus.OK, Channel.ProfileStatus.UNAVAILABLE)
    assert "\x00" not in row.display_name + row.description
    assert len(row.display_name) <= 640
    assert row.avatar_url == ""  # no avatar URL is built from a reference that is not a CID
    assert use_pds.refresh_count(account.did) == 1


# --- session answers that do not fit ---------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides",
    [
        {"handle": "a" * 250 + ".test"},
        {"handle": "ali\x00ce.test"},
        {"did": "did:plc:" + "a" * 300},
        {"did": "not-a-did"},
        {"did": None},
        {"accessJwt": jwt(scope="com.atproto.appPass", exp=10**20)},
        {"accessJwt": jwt(scope="com.atproto.appPass", exp="tomorrow")},
        {"refreshJwt": jwt(scope="com.atproto.refresh", exp=-(10**12))},
        {"refreshJwt": jwt(scope="com.atproto.refresh", exp=float("1e308"))},
        {"refreshJwt": "not-a-jwt"},
    ],
    ids=[
        "handle-too-long",
        "handle-nul",
        "did-too-long",
        "did-malformed",
        "no-did",
        "exp-absurd",
        "exp-text",
        "exp-before-2000",
        "exp-huge-float",
        "not-a-jwt",
    ],
)
def test_a_session_answer_that_does_not_fit_is_refused_and_nothing_is_stored(overrides, user, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://pds.example.com")
    with respx.mock() as mock:
        mock.get(url__regex=RESOLVE_HANDLE).mock(return_value=httpx.Response(200, json={"did": DID}))
        mock.post(url__regex=CREATE_SESSION).mock(return_value=httpx.Response(200, json=session_answer(**overrides)))
        with pytest.raises(errors.InvalidResponse):
            services.connect(user, "alice.test", "abcd-efgh-ijkl-mnop")
    assert not Channel.objects.exists()
    assert not ChannelEvent.objects.exists()


@pytest.mark.django_db
def test_a_pds_endpoint_longer_than_its_column_is_ignored(user, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://pds.example.com")
    endpoint = "https://pds.example.com/" + "a" * 600
    did_doc = {
        "id": DID,
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": endpoint}],
    }
    with respx.mock() as mock:
        mock.get(url__regex=RESOLVE_HANDLE).mock(return_value=httpx.Response(200, json={"did": DID}))
        mock.post(url__regex=CREATE_SESSION).mock(return_value=httpx.Response(200, json=session_answer(didDoc=did_doc)))
        mock.get(url__regex=GET_RECORD).mock(return_value=httpx.Response(400, json={"error": "RecordNotFound"}))
        mock.route().pass_through()  # the DID document is looked up after the sign-in (there is none for this DID)
        channel = services.connect(user, "alice.test", "abcd-efgh-ijkl-mnop")
    assert stored(channel).pds_endpoint == ""
    assert stored(channel).pds_url == "https://pds.example.com"


# --- refresh answers ---------------------------------------------------------------------------------------------
@pytest.mark.pds
@pytest.mark.django_db
def test_a_refresh_answered_for_another_account_is_refused_and_changes_nothing(channel, account):
    as_if_refreshed_long_ago(channel)
    before = stored(channel)
    other = session_answer(did="did:plc:zzzzzzzzzzzzzzzzzzzzzzzz", handle="mallory.test")
    with respx.mock(assert_all_called=False) as mock:
        mock.post(url__regex=REFRESH_SESSION).mock(return_value=httpx.Response(200, json=other))
        mock.route().pass_through()
        with pytest.raises(errors.AccountMismatch):
            services.refresh_channel(channel)
    after = stored(channel)
    for name in ("did", "handle", "access_jwt", "refresh_jwt", "status", "session_generation", "next_retry_at"):
        assert getattr(after, name) == getattr(before, name), name
    event = after.events.first()
    assert event.error_code == "account_mismatch"
    assert "did:plc:zzzzzzzzzzzzzzzzzzzzzzzz" in event.detail
    assert "different account" in describe(errors.AccountMismatch()).message


@pytest.mark.pds
@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"Retry-After": str(10**30)},
        {"RateLimit-Reset": str(10**20)},
        {"RateLimit-Reset": "99999999999999999999999999"},
    ],
    ids=["date-9999", "seconds-huge", "reset-huge", "reset-overflow"],
)
def test_a_retry_time_far_in_the_future_is_capped_at_a_day_and_shown_with_its_date(headers, channel):
    as_if_refreshed_long_ago(channel)
    with respx.mock(assert_all_called=False) as mock:
        mock.post(url__regex=REFRESH_SESSION).mock(
            return_value=httpx.Response(503, headers=headers, json={"error": "InternalServerError"})
        )
        mock.route().pass_through()
        with pytest.raises(errors.TemporaryError) as caught:
            services.refresh_channel(channel)
    assert 1 <= caught.value.retry_after <= MAX_RETRY_AFTER
    row = stored(channel)
    assert row.next_retry_at <= timezone.now() + timedelta(seconds=MAX_RETRY_AFTER + 5)
    assert row.refresh_jwt == channel.refresh_jwt  # a temporary fault keeps the session
    health = services.health(row)
    assert health.state == "degraded"
    assert f"{row.next_retry_at:%Y-%m-%d %H:%M} UTC" in health.advice


# --- the fuzzed conversation ------------------------------------------------------------------------------------
def _now_plus(seconds: int) -> int:
    return int(time.time()) + seconds


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
any_json = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)
expiries = st.one_of(
    st.just("valid"), st.integers(min_value=-(2**64), max_value=2**64), st.floats(allow_nan=False), st.text(max_size=4)
)
scopes = st.sampled_from(["com.atproto.appPass", "com.atproto.appPassPrivileged", "com.atproto.access", None])


@st.composite
def tokens(draw, lifetime: int):
    if draw(st.booleans()):
        return draw(any_json)
    exp = draw(expiries)
    claims = {"scope": draw(scopes), "sub": DID, "exp": _now_plus(lifetime) if exp == "valid" else exp}
    return jwt(**claims)


did_docs = st.one_of(
    any_json,
    st.builds(
        lambda endpoint: {"id": DID, "service": [{"id": "#atproto_pds", "serviceEndpoint": endpoint}]},
        st.one_of(st.just("https://pds.example.com"), st.text(max_size=60), any_json),
    ),
)
session_answers = st.one_of(
    any_json,
    st.fixed_dictionaries(
        {},
        optional={
            "accessJwt": tokens(7200),
            "refreshJwt": tokens(90 * 86400),
            "did": st.one_of(st.just(DID), st.text(max_size=300), any_json),
            "handle": st.one_of(st.just("alice.test"), st.text(max_size=300), any_json),
            "active": any_json,
            "status": any_json,
            "didDoc": did_docs,
            "email": any_json,
        },
    ),
)
answers = st.tuples(st.sampled_from([200, 200, 200, 400, 401, 429, 500, 502]), session_answers, any_json)


def _respond(status: int, body, headers_value) -> httpx.Response:
    headers = {"Retry-After": str(headers_value)[:50]} if isinstance(headers_value, str | int | float) else {}
    try:
        return httpx.Response(status, json=body, headers=headers)
    except (ValueError, TypeError):  # NaN or a header httpx will not send: send it as text then
        return httpx.Response(status, text=str(body)[:200])


UNLIMITED = {scope: (10**9, 60) for scope in ("user", "ip", "account", "user_day", "ip_day", "account_day")}
FUZZ = hypothesis_settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.mark.django_db
@FUZZ
@given(answer=answers)
def test_fuzzed_create_session_answers_give_a_channel_or_our_error_and_store_nothing(answer, user, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://pds.example.com")
    monkeypatch.setattr(django_settings, "INTEGRATIONS_CONNECT_RATES", UNLIMITED, raising=False)
    before = Channel.objects.count(), ChannelEvent.objects.count()
    status, body, header = answer
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=RESOLVE_HANDLE).mock(return_value=_respond(status, {"did": DID}, header))
        mock.post(url__regex=CREATE_SESSION).mock(return_value=_respond(status, body, header))
        mock.post(url__regex=r".*deleteSession").mock(return_value=httpx.Response(200))
        mock.get(url__regex=GET_RECORD).mock(return_value=_respond(status, body, header))
        try:
            channel = services.connect(user, "alice.test", "abcd-efgh-ijkl-mnop")
        except IntegrationError:
            assert (Channel.objects.count(), ChannelEvent.objects.count()) == before
        else:
            row = stored(channel)
            assert row.did.startswith("did:") and len(row.did) <= 255
            assert row.access_expires_at and row.refresh_expires_at
            row.delete()


@pytest.mark.django_db
@FUZZ
@given(answer=answers)
def test_fuzzed_refresh_answers_rotate_or_keep_the_session_exactly(answer, user, monkeypatch):
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", "https://pds.example.com")
    channel, _ = Channel.objects.update_or_create(
        user=user,
        did=DID,
        defaults={
            "handle": "alice.test",
            "service_url": "https://pds.example.com",
            "pds_endpoint": "",
            "access_jwt": jwt(scope="com.atproto.appPass", exp=_now_plus(60)),
            "refresh_jwt": jwt(scope="com.atproto.refresh", exp=_now_plus(86400)),
            "status": Channel.Status.ACTIVE,
            "next_retry_at": None,
            "refreshed_at": None,
        },
    )
    before = stored(channel)
    status, body, header = answer
    with respx.mock(assert_all_called=False) as mock:
        mock.post(url__regex=REFRESH_SESSION).mock(return_value=_respond(status, body, header))
        try:
            refreshed = door.refresh(channel, seen_generation=channel.session_generation, force=True)
        except IntegrationError as exc:
            after = stored(channel)
            if exc.code == "session_expired":  # the PDS's own verdict on the token: the session is gone
                assert after.refresh_jwt == ""
            else:
                assert (after.access_jwt, after.refresh_jwt, after.did) == (
                    before.access_jwt,
                    before.refresh_jwt,
                    before.did,
                )
                if after.next_retry_at:
                    assert after.next_retry_at <= timezone.now() + timedelta(seconds=MAX_RETRY_AFTER + 5)
        else:
            assert refreshed
            after = stored(channel)
            assert after.did == DID
            assert after.refresh_jwt != before.refresh_jwt or after.access_jwt != before.access_jwt
