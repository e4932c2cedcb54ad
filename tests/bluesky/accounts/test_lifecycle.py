"""A channel's session lifecycle against the real local PDS: proactive and reactive refreshes, a dead refresh token,
a deactivated account, and what ends up in the logs."""

import base64
import json
import logging
from datetime import timedelta

import httpx
import pytest
import respx
from django.utils import timezone

from integrations.bluesky import services
from integrations.bluesky.accounts import door
from integrations.bluesky.words import APP_PASSWORDS_URL
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.client import PdsClient
from integrations.models import Channel, ChannelEvent
from tests.conftest import as_if_refreshed_long_ago, stored

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

REFRESH_SESSION = r".*/xrpc/com\.atproto\.server\.refreshSession"


def get_session(client: PdsClient, token: str) -> dict:
    return client.get_session(token)


def event_kinds(channel: Channel) -> list[str]:
    return list(ChannelEvent.objects.filter(channel_id=channel.pk).values_list("kind", flat=True))


def corrupt_signature(jwt: str) -> str:
    """The same token with one signature character changed: it still reads as unexpired, but no PDS accepts it."""
    header, payload, signature = jwt.split(".")
    middle = len(signature) // 2
    replacement = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{replacement}{signature[middle + 1 :]}"


# --- Proactive refresh -------------------------------------------------------------------------------------------
def test_access_token_ending_within_the_margin_is_refreshed_once_before_the_call(channel, pds, account):
    before = stored(channel)
    channel.access_expires_at = timezone.now() + timedelta(minutes=1)
    channel.save()

    result = door.call(channel, get_session)

    assert result["did"] == account.did
    assert pds.refresh_count(account.did) == 1
    after = stored(channel)
    assert after.refresh_jwt != before.refresh_jwt
    assert after.session_generation == before.session_generation + 1
    # A fresh two-hour access token replaced the one that was about to end.
    assert after.access_expires_at - timezone.now() > timedelta(hours=1)
    assert after.refreshed_at is not None
    assert after.status == Channel.Status.ACTIVE
    # The caller's object carries the tokens now in force.
    assert (channel.access_jwt, channel.refresh_jwt) == (after.access_jwt, after.refresh_jwt)
    assert event_kinds(channel).count(ChannelEvent.Kind.REFRESHED) == 1


def test_access_token_well_ahead_of_the_margin_is_used_as_it_is(channel, pds, account):
    before = stored(channel)
    channel.access_expires_at = timezone.now() + timedelta(hours=1)
    channel.save()

    assert door.call(channel, get_session)["did"] == account.did

    assert pds.refresh_count(account.did) == 0
    after = stored(channel)
    assert (after.access_jwt, after.refresh_jwt) == (before.access_jwt, before.refresh_jwt)
    assert after.session_generation == before.session_generation
    assert ChannelEvent.Kind.REFRESHED not in event_kinds(channel)


def test_refresh_margin_follows_the_setting(channel, pds, account, settings):
    # The token is good for about two hours: a 3-hour margin makes it due, a 30-second one does not.
    settings.INTEGRATIONS_REFRESH_MARGIN = 30
    channel.access_expires_at = timezone.now() + timedelta(minutes=1)
    channel.save()
    door.call(channel, get_session)
    assert pds.refresh_count(account.did) == 0

    settings.INTEGRATIONS_REFRESH_MARGIN = 3 * 3600
    door.call(channel, get_session)
    assert pds.refresh_count(account.did) == 1


# --- Reactive refresh -------------------------------------------------------------------------------------------
def test_rejected_access_token_is_refreshed_once_and_the_call_replayed_with_the_stored_tokens(channel, pds, account):
    before = stored(channel)
    garbage = corrupt_signature(before.access_jwt)
    channel.access_jwt = garbage
    channel.save()
    assert not channel.access_expires_within(door.refresh_margin())  # nothing proactive about this one

    calls = []

    def fn(client, token):
        calls.append((token, stored(channel).access_jwt))
        return client.get_session(token)

    result = door.call(channel, fn)

    assert result["did"] == account.did
    assert pds.refresh_count(account.did) == 1
    assert len(calls) == 2  # the original call and one replay
    assert calls[0][0] == garbage
    replay_token, row_token_at_replay = calls[1]
    assert replay_token != garbage
    # The new tokens were in the database before the replay went out.
    assert replay_token == row_token_at_replay
    after = stored(channel)
    assert after.access_jwt == replay_token
    assert after.refresh_jwt != before.refresh_jwt
    assert after.session_generation == before.session_generation + 1
    assert after.status == Channel.Status.ACTIVE
    assert event_kinds(channel).count(ChannelEvent.Kind.REFRESHED) == 1


def test_replay_that_is_rejected_again_does_not_loop(channel, pds, account):
    before = stored(channel)
    invocations = []

    def always_rejected(client, token):
        invocations.append(token)
        raise errors.SessionRejected("Token could not be verified", status_code=401, upstream_error="InvalidToken")

    with pytest.raises(errors.SessionRejected):
        door.call(channel, always_rejected)

    assert len(invocations) == 2
    assert pds.refresh_count(account.did) == 1
    # The refresh itself worked: the channel keeps the new, valid session.
    after = stored(channel)
    assert after.refresh_jwt and after.refresh_jwt != before.refresh_jwt
    assert invocations[1] == after.access_jwt
    assert after.status == Channel.Status.ACTIVE


# --- Dead refresh token -----------------------------------------------------------------------------------------
def test_revoked_refresh_token_wipes_the_session_and_asks_for_a_reconnection(channel, pds, account):
    assert pds.delete_session(channel.refresh_jwt).status_code == 200

    with pytest.raises(errors.SessionExpired):
        services.refresh_channel(channel)

    row = stored(channel)
    assert row.status == Channel.Status.NEEDS_RECONNECTION
    assert row.access_jwt == ""
    assert row.refresh_jwt == ""
    assert row.access_expires_at is None
    assert row.last_error_code == errors.SessionExpired.code
    kinds = event_kinds(row)
    assert ChannelEvent.Kind.REFRESH_FAILED in kinds
    assert ChannelEvent.Kind.NEEDS_RECONNECTION in kinds
    health = services.health(row)
    assert health.state == "needs_reconnection"
    assert health.action == "reconnect"
    assert APP_PASSWORDS_URL in health.advice

    # Later calls fail at once, without going to the PDS.
    invoked = []
    with respx.mock(assert_all_called=False) as respx_mock:
        respx_mock.route().pass_through()
        for target in (channel, row):
            with pytest.raises((errors.SessionExpired, errors.NoSession)):
                door.call(target, lambda client, token: invoked.append(token))
        assert respx_mock.calls.call_count == 0
    assert invoked == []
    assert pds.refresh_count(account.did) == 0


# --- Deactivated account ----------------------------------------------------------------------------------------
def test_refresh_of_a_deactivated_account_marks_the_channel_and_keeps_its_session(channel, pds, account):
    pds.deactivate(account)

    services.refresh_channel(channel)

    row = stored(channel)
    assert row.status == Channel.Status.DEACTIVATED
    assert row.access_jwt and row.refresh_jwt
    health = services.health(row)
    assert health.state == "deactivated"
    assert health.action == "refresh"
    # The session kept is a live one: the PDS still honours the stored refresh token.
    assert pds.refresh_with(row.refresh_jwt).status_code == 200


# --- Logs -------------------------------------------------------------------------------------------------------
def jwt_secrets(jwt: str) -> set[str]:
    """A token, its payload and signature segments, and its `jti` (the header is the same for every token)."""
    _header, payload, signature = jwt.split(".")
    found = {jwt, payload, signature}
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims.get("jti"):
        found.add(claims["jti"])
    return found


def test_logs_never_carry_a_password_or_token_but_name_the_account(use_pds, user, account, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    for name in ("integrations", "httpx", "httpcore", "atproto", "atproto_client", "atproto_core", "django"):
        caplog.set_level(logging.DEBUG, logger=name)

    issued = []  # every session the PDS handed to the app, whatever step it came from
    original_session = PdsClient._session

    def spy_session(result):
        session = original_session(result)
        issued.append(session)
        return session

    monkeypatch.setattr(PdsClient, "_session", staticmethod(spy_session))
    password = account.app_passwords[0]

    # connect -> refresh -> a temporary failure -> a dead refresh token -> reconnect -> disconnect
    channel = services.connect(user, account.handle, password)
    services.refresh_channel(channel)
    as_if_refreshed_long_ago(channel)
    with respx.mock(assert_all_called=False) as respx_mock:
        respx_mock.post(url__regex=REFRESH_SESSION).mock(
            return_value=httpx.Response(503, json={"error": "InternalServerError", "message": "down"})
        )
        respx_mock.route().pass_through()
        with pytest.raises(errors.PdsServerError):
            services.refresh_channel(channel)
    assert use_pds.delete_session(channel.refresh_jwt).status_code == 200
    with pytest.raises(errors.SessionExpired):
        services.refresh_channel(channel)
    channel = services.connect(user, account.handle, password)
    assert services.disconnect(channel) is True

    assert len(issued) == 3  # connect, refresh, reconnect
    secrets = {password, account.password}
    for session in issued:
        secrets |= jwt_secrets(session.access_jwt) | jwt_secrets(session.refresh_jwt)

    haystack = [caplog.text]
    for record in caplog.records:
        haystack += [record.getMessage(), str(record.msg), repr(record.args)]
    logged = "\n".join(haystack)
    leaked = sorted(secret[:12] + "..." for secret in secrets if secret in logged)
    assert leaked == []

    # The capture saw the whole story (including the HTTP library's own lines), naming the account.
    assert "HTTP Request:" in caplog.text
    assert account.did in caplog.text
    assert "refresh failed temporarily" in caplog.text
    assert "refresh token dead" in caplog.text
    assert "channel event disconnected" in caplog.text
