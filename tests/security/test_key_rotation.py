"""Key rotation never bricks a channel: a session no configured key decrypts is a state the app understands.

The scenario from the issue: tokens are stored under the key in use, the keys become `new,old` (still readable),
then `old` is dropped. Every page, API call, admin action and the keep-alive must then treat the channel as needing
reconnection, without a 500 and without a traceback, and a reconnection must overwrite the unreadable session.
"""

import logging
import os
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations.bluesky.accounts import keepalive
from integrations.models import Channel, ChannelEvent
from integrations.security import crypto, rotation

pytestmark = pytest.mark.django_db

OLD_KEY = os.environ["INTEGRATIONS_ENCRYPTION_KEYS"].split(",")[0]  # the key the fixtures store sessions with
NEW_KEY = Fernet.generate_key().decode()
ADVICE = "can no longer read the stored session"
LIST = reverse("integrations:channel-list")
API_LIST = "/api/v1/channels/"
ADMIN_CHANNELS = "/admin/integrations/channel/"


def raw_tokens(pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_jwt, refresh_jwt FROM integrations_channel WHERE id = %s", [pk])
        return cursor.fetchone()


def drop_old_key(settings) -> None:
    """Rotate as the issue observed it: `new,old` first (all still readable), then `old` dropped."""
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert Channel.objects.get().refresh_jwt  # still readable
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY]


@pytest.fixture
def lost(channel, settings) -> Channel:
    """Alice's connected channel after the key its session was stored with has been dropped."""
    drop_old_key(settings)
    return channel


@pytest.fixture
def alice_api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def marked(channel: Channel) -> Channel:
    """The row as stored, asserting it was marked as needing reconnection for an unreadable session."""
    row = Channel.objects.get(pk=channel.pk)
    assert row.status == Channel.Status.NEEDS_RECONNECTION
    assert row.last_error_code == "session_unreadable"
    assert row.events.filter(kind=ChannelEvent.Kind.NEEDS_RECONNECTION, error_code="session_unreadable").count() == 1
    return row


# --- the field and the model ---------------------------------------------------------------------------------------
@pytest.mark.pds
def test_an_unreadable_session_loads_as_an_empty_unreadable_secret(lost, caplog):
    with caplog.at_level(logging.WARNING, logger="integrations.security.fields"):
        row = Channel.objects.get(pk=lost.pk)
    assert row.refresh_jwt == "" and row.access_jwt == ""
    assert isinstance(row.refresh_jwt, crypto.Secret) and row.refresh_jwt.readable is False
    assert row.session_unreadable and not row.has_session
    assert "integrations.Channel.refresh_jwt" in caplog.text
    ciphertexts = raw_tokens(lost.pk)
    assert all(c and c not in caplog.text for c in ciphertexts)  # named, never shown


@pytest.mark.pds
def test_without_tokens_judges_the_raw_ciphertext_without_decrypting_it(lost, monkeypatch, settings):
    def no_decrypt(value: str) -> str:
        raise AssertionError("a list must not decrypt tokens")

    monkeypatch.setattr(crypto, "decrypt", no_decrypt)
    row = Channel.objects.without_tokens().get(pk=lost.pk)
    assert row.refresh_cipher == raw_tokens(lost.pk)[1]  # the Cast bypasses the field's from_db_value
    assert row.get_deferred_fields() == {"access_jwt", "refresh_jwt"}
    assert row.session_unreadable is True
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert Channel.objects.without_tokens().get(pk=lost.pk).session_unreadable is False
    assert row.get_deferred_fields() == {"access_jwt", "refresh_jwt"}  # still nothing loaded


@pytest.mark.pds
def test_putting_the_old_key_back_brings_the_session_back(lost, alice_client, settings, use_pds, account):
    alice_client.post(reverse("integrations:channel-refresh", args=[lost.pk]))
    marked(lost)
    assert raw_tokens(lost.pk)[1]  # marking kept the ciphertext
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    response = alice_client.post(reverse("integrations:channel-refresh", args=[lost.pk]))
    assert f"Refreshed @{lost.handle}." in texts(response)
    assert Channel.objects.get(pk=lost.pk).status == Channel.Status.ACTIVE
    assert use_pds.refresh_count(account.did) == 1


# --- web pages -------------------------------------------------------------------------------------------------------
@pytest.mark.pds
def test_list_shows_the_channel_needs_reconnection_and_why(lost, alice_client):
    response = alice_client.get(LIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Needs reconnection" in page
    assert "Active" not in page
    assert ADVICE in page
    assert "Reconnect" in page
    assert any(ADVICE in text for text in texts(response))  # the owner is told once


@pytest.mark.pds
def test_detail_page_shows_the_channel_needs_reconnection(lost, alice_client):
    response = alice_client.get(reverse("integrations:channel-detail", args=[lost.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Needs reconnection" in page
    assert ADVICE in page


@pytest.mark.pds
def test_refresh_marks_the_channel_once_and_says_so(lost, alice_client, use_pds, account):
    url = reverse("integrations:channel-refresh", args=[lost.pk])
    response = alice_client.post(url)
    assert response.status_code == 302
    assert any("can no longer read the channel's stored session" in text for text in texts(response))
    marked(lost)
    assert alice_client.post(url).status_code == 302
    marked(lost)  # still one event
    assert use_pds.refresh_count(account.did) == 0


@pytest.mark.pds
def test_disconnect_then_remove(lost, alice_client):
    response = alice_client.post(reverse("integrations:channel-disconnect", args=[lost.pk]), {"confirm": "yes"})
    assert response.status_code == 302
    row = Channel.objects.get(pk=lost.pk)
    assert row.status == Channel.Status.DISCONNECTED
    assert raw_tokens(lost.pk) == ("", "")
    assert not row.session_unreadable
    assert "could not be decrypted" in row.events.filter(kind="disconnected").get().detail

    response = alice_client.post(reverse("integrations:channel-remove", args=[lost.pk]), {"confirm": "yes"})
    assert response.status_code == 302
    assert not Channel.objects.filter(pk=lost.pk).exists()


@pytest.mark.pds
def test_remove_before_disconnecting_is_refused_not_a_500(lost, alice_client):
    response = alice_client.post(reverse("integrations:channel-remove", args=[lost.pk]), {"confirm": "yes"})
    assert response.status_code == 302
    assert "Disconnect the channel before removing it." in texts(response)
    assert Channel.objects.filter(pk=lost.pk).exists()


@pytest.mark.pds
def test_reconnecting_overwrites_the_unreadable_session(lost, alice_client, account, use_pds):
    response = alice_client.post(
        reverse("integrations:connect-bluesky"),
        {"identifier": account.handle, "app_password": account.app_passwords[0]},
    )
    assert response.status_code == 302, response.content
    row = Channel.objects.get(pk=lost.pk)
    assert row.status == Channel.Status.ACTIVE
    assert row.refresh_jwt and row.refresh_jwt.readable and not row.session_unreadable
    access, refresh = raw_tokens(lost.pk)
    assert crypto.key_index(access) == 0 and crypto.key_index(refresh) == 0  # under the new key
    assert Fernet(NEW_KEY).decrypt(refresh.encode()).decode() == row.refresh_jwt
    assert "Active" in alice_client.get(LIST).content.decode()


# --- REST API --------------------------------------------------------------------------------------------------------
@pytest.mark.pds
def test_api_list_and_retrieve_show_needs_reconnection(lost, alice_api):
    for response in (alice_api.get(API_LIST), alice_api.get(f"{API_LIST}{lost.pk}/")):
        assert response.status_code == 200
        body = response.json()
        row = body["channels"][0] if "channels" in body else body
        assert row["health"]["state"] == "needs_reconnection"
        assert row["health"]["action"] == "reconnect"
        assert ADVICE in row["health"]["advice"]
        assert row["needs_reconnection"] is True


@pytest.mark.pds
def test_api_refresh_is_a_409_with_its_own_code(lost, alice_api):
    response = alice_api.post(f"{API_LIST}{lost.pk}/refresh/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_unreadable"
    marked(lost)


@pytest.mark.pds
def test_api_delete_disconnects(lost, alice_api):
    assert alice_api.delete(f"{API_LIST}{lost.pk}/").status_code == 204
    assert Channel.objects.get(pk=lost.pk).status == Channel.Status.DISCONNECTED


# --- admin -----------------------------------------------------------------------------------------------------------
@pytest.mark.pds
def test_admin_pages_and_refresh_action(lost, admin_client):
    changelist = admin_client.get(ADMIN_CHANNELS)
    assert changelist.status_code == 200
    assert "Needs reconnection" in changelist.content.decode()
    assert admin_client.get(f"{ADMIN_CHANNELS}{lost.pk}/change/").status_code == 200

    response = admin_client.post(
        ADMIN_CHANNELS, {"action": "refresh_selected", "_selected_action": [lost.pk]}, follow=True
    )
    assert response.status_code == 200
    assert f"Not refreshed: @{lost.handle}: session_unreadable" in response.content.decode()
    marked(lost)


# --- keep-alive ------------------------------------------------------------------------------------------------------
@pytest.mark.pds
@pytest.mark.django_db(transaction=True)
def test_keepalive_marks_the_channel_once_without_a_traceback(lost, caplog, use_pds, account):
    Channel.objects.filter(pk=lost.pk).update(refreshed_at=None, connected_at="2000-01-01T00:00:00Z")
    with caplog.at_level(logging.INFO):
        result = keepalive.sweep()
    assert result.failed == {"session_unreadable": 1}
    marked(lost)
    assert not [record for record in caplog.records if record.exc_info]
    assert "Traceback" not in caplog.text

    again = keepalive.sweep()
    assert again.due == 0
    marked(lost)
    assert use_pds.refresh_count(account.did) == 0


# --- manage.py integrations_reencrypt ----------------------------------------------------------------------------
def fake_channels(django_user_model, count: int) -> list[Channel]:
    """Channels with made-up tokens (no PDS needed), stored under the keys configured now."""
    user = django_user_model.objects.create_user("dora", password="dora-password-123")
    return [
        Channel.objects.create(
            user=user,
            did=f"did:plc:fake{n:020d}",
            handle=f"fake{n}.test",
            service_url="https://pds.example.com",
            access_jwt=f"access-{n}",
            refresh_jwt=f"refresh-{n}",
        )
        for n in range(count)
    ]


def reencrypt(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("integrations_reencrypt", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def all_raw() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_jwt, refresh_jwt FROM integrations_channel ORDER BY id")
        return [value for row in cursor.fetchall() for value in row]


@pytest.mark.pds
def test_reencrypt_then_drop_the_old_key_keeps_the_channel_working(channel, alice_client, settings, use_pds, account):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    updated_at = Channel.objects.get(pk=channel.pk).updated_at
    out, err = reencrypt()
    assert "2 stored secret(s): 2 re-encrypted with the first key, 0 already were, 0 unreadable" in out
    assert err == ""
    new_only = Fernet(NEW_KEY)
    access, refresh = raw_tokens(channel.pk)
    assert new_only.decrypt(access.encode()).decode() == channel.access_jwt
    assert new_only.decrypt(refresh.encode()).decode() == channel.refresh_jwt
    assert Channel.objects.get(pk=channel.pk).updated_at == updated_at  # not a change anyone made

    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY]
    response = alice_client.post(reverse("integrations:channel-refresh", args=[channel.pk]))
    assert f"Refreshed @{channel.handle}." in texts(response)
    assert use_pds.refresh_count(account.did) == 1


def test_reencrypt_works_in_batches_and_twice_is_a_no_op(django_user_model, settings):
    fake_channels(django_user_model, 7)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    out, _ = reencrypt("--batch-size", "2")
    assert "14 stored secret(s): 14 re-encrypted" in out
    assert all(crypto.key_index(raw) == 0 for raw in all_raw())
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY]
    assert [c.refresh_jwt for c in Channel.objects.all()] == [f"refresh-{n}" for n in range(7)]
    before = all_raw()
    out, _ = reencrypt()
    assert "14 stored secret(s): 0 re-encrypted with the first key, 14 already were" in out
    assert all_raw() == before


def test_reencrypt_reports_unreadable_rows_and_leaves_them_alone(django_user_model, settings):
    readable, lost = fake_channels(django_user_model, 2)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    Channel.objects.filter(pk=lost.pk).update(refresh_jwt="refresh-under-a-lost-key")
    lost_raw = raw_tokens(lost.pk)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    out, err = reencrypt()
    assert f"integrations.Channel pk={lost.pk} (@fake1.test did:plc:fake{1:020d}): refresh_jwt" in err
    assert "refresh-under-a-lost-key" not in err + out and lost_raw[1] not in err + out
    assert "3 re-encrypted with the first key, 0 already were, 1 unreadable (left as they are)" in out
    assert raw_tokens(lost.pk)[1] == lost_raw[1]
    assert crypto.key_index(raw_tokens(lost.pk)[0]) == 0  # its readable access token was re-encrypted
    assert crypto.key_index(raw_tokens(readable.pk)[1]) == 0


def test_check_mode_changes_nothing_and_fails_until_everything_is_current(django_user_model, settings):
    fake_channels(django_user_model, 2)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    before = all_raw()
    with pytest.raises(CommandError) as excinfo:
        reencrypt("--check")
    assert excinfo.value.returncode == 1
    assert "4 not encrypted with the first key: run integrations_reencrypt" in str(excinfo.value)
    assert all_raw() == before

    out, _ = reencrypt("--dry-run")
    assert "0 encrypted with the first key, 4 with an older key (to re-encrypt), 0 unreadable" in out
    assert all_raw() == before

    reencrypt()
    out, _ = reencrypt("--check")
    assert "4 stored secret(s): 4 encrypted with the first key, 0 with an older key" in out


def test_check_mode_fails_on_unreadable_secrets(django_user_model, settings):
    fake_channels(django_user_model, 1)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(CommandError) as excinfo:
        reencrypt("--check")
    assert excinfo.value.returncode == 1
    assert "2 no configured key decrypts" in str(excinfo.value)


def test_check_mode_passes_with_nothing_stored(db):
    out, err = reencrypt("--check")
    assert (
        out.strip()
        == "0 stored secret(s): 0 encrypted with the first key, 0 with an older key (to re-encrypt), 0 unreadable."
    )
    assert err == ""


def test_a_secret_stored_meanwhile_is_not_overwritten(django_user_model, settings):
    (row,) = fake_channels(django_user_model, 1)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    old_raw = raw_tokens(row.pk)[1]
    Channel.objects.filter(pk=row.pk).update(refresh_jwt="refreshed-meanwhile")  # a refresh between read and write
    assert rotation._reencrypt(Channel, row.pk, {"refresh_jwt": old_raw}, "default") == 0
    assert Channel.objects.get(pk=row.pk).refresh_jwt == "refreshed-meanwhile"
