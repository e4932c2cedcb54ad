"""The app's signals (connected, reconnected, disconnected, health changed) and the owner's one e-mail per problem,
against the real local PDS."""

import pytest
from django.core import mail
from django.db import transaction

from integrations.bluesky import services
from integrations.bluesky.accounts import keepalive
from integrations.models import Channel
from integrations.signals import channel_connected, channel_disconnected, channel_health_changed
from tests.conftest import as_if_refreshed_long_ago

# Signals are sent once the transaction commits: these tests commit for real.
pytestmark = [pytest.mark.pds, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def received():
    """Every signal the app sends during the test, as (name, kwargs without the signal itself)."""
    seen: list[tuple[str, dict]] = []
    receivers = {}
    for name, signal in (
        ("connected", channel_connected),
        ("disconnected", channel_disconnected),
        ("health", channel_health_changed),
    ):

        def receiver(sender, name=name, **kwargs):
            kwargs.pop("signal")
            assert sender is Channel
            seen.append((name, kwargs))

        receivers[signal] = receiver
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def kill_session_on_the_pds(pds, channel):
    """The owner revokes the app password's session elsewhere: the next refresh meets a dead refresh token."""
    assert pds.delete_session(Channel.objects.get(pk=channel.pk).refresh_jwt).status_code == 200
    as_if_refreshed_long_ago(channel)


def test_connect_reconnect_and_disconnect_are_announced(use_pds, user, account, received):
    channel = services.connect(user, account.handle, account.app_passwords[0])
    assert received == [("connected", {"channel": channel, "reconnected": False})]
    received.clear()

    again = services.connect(user, account.handle, account.app_passwords[0])
    assert again.pk == channel.pk
    assert received == [("connected", {"channel": again, "reconnected": True})]
    received.clear()

    services.disconnect(again)
    names = [name for name, _ in received]
    assert names == ["health", "disconnected"]
    assert received[0][1]["old_state"] == "active" and received[0][1]["new_state"] == "disconnected"
    assert received[1][1]["revoked"] is True


def test_a_dead_session_is_announced_once_with_old_and_new_state(use_pds, channel, received):
    kill_session_on_the_pds(use_pds, channel)
    for _ in range(3):  # the first failure changes the health; the next ones find it already changed
        with pytest.raises(Exception):
            services.refresh_channel(Channel.objects.get(pk=channel.pk))
    keepalive.sweep(within_days=400)
    health = [kwargs for name, kwargs in received if name == "health"]
    assert len(health) == 1
    assert (health[0]["old_state"], health[0]["new_state"]) == ("active", "needs_reconnection")
    assert health[0]["channel"].pk == channel.pk


def test_nothing_is_announced_for_a_change_that_is_rolled_back(use_pds, user, account, received):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.connect(user, account.handle, account.app_passwords[0])
        raise RuntimeError("the host project's transaction fails afterwards")
    assert received == []
    assert not Channel.objects.exists()


def test_the_owner_is_emailed_once_per_problem(use_pds, user, account, settings):
    user.email = "alice@example.com"
    user.save()
    channel = services.connect(user, account.handle, account.app_passwords[0])
    kill_session_on_the_pds(use_pds, channel)
    for _ in range(3):
        with pytest.raises(Exception):
            services.refresh_channel(Channel.objects.get(pk=channel.pk))
    keepalive.sweep(within_days=400)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert f"@{account.handle}" in message.subject and "Needs reconnection" in message.subject
    assert "app-passwords" in message.body  # what to do
    assert channel.get_absolute_url() in message.body  # where
    assert "eyJ" not in message.body

    # Reconnected, then the new session dies too: a new problem, a new e-mail.
    channel = services.connect(user, account.handle, account.app_passwords[0])
    kill_session_on_the_pds(use_pds, channel)
    with pytest.raises(Exception):
        services.refresh_channel(Channel.objects.get(pk=channel.pk))
    assert len(mail.outbox) == 2


def test_owners_are_not_emailed_when_the_project_switches_it_off(use_pds, user, account, settings):
    settings.INTEGRATIONS_NOTIFY_OWNERS = False
    user.email = "alice@example.com"
    user.save()
    channel = services.connect(user, account.handle, account.app_passwords[0])
    kill_session_on_the_pds(use_pds, channel)
    with pytest.raises(Exception):
        services.refresh_channel(Channel.objects.get(pk=channel.pk))
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.NEEDS_RECONNECTION
    assert mail.outbox == []


class TeamAdapter:
    """A project's adapter that sends problems to the team's shared inbox and links to its own site."""

    def problem_email_recipients(self, channel):
        return ["social-team@example.com"]

    def channel_url(self, channel):
        return "https://social.example.com" + channel.get_absolute_url()


def test_the_adapter_decides_who_is_told_and_the_link(use_pds, user, account, settings):
    from integrations.adapter import IntegrationsAdapter

    settings.INTEGRATIONS_ADAPTER = "tests.test_signals.ProjectAdapter"
    globals()["ProjectAdapter"] = type("ProjectAdapter", (TeamAdapter, IntegrationsAdapter), {})
    channel = services.connect(user, account.handle, account.app_passwords[0])
    kill_session_on_the_pds(use_pds, channel)
    with pytest.raises(Exception):
        services.refresh_channel(Channel.objects.get(pk=channel.pk))
    [message] = mail.outbox
    assert message.to == ["social-team@example.com"]
    assert f"https://social.example.com/app/channels/{channel.pk}" in message.body


def test_a_second_disconnect_sends_nothing_and_records_nothing_from_the_api_or_the_page(
    use_pds, user, account, received
):
    from django.test import Client
    from django.urls import reverse
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from integrations.models import ChannelEvent

    channel = services.connect(user, account.handle, account.app_passwords[0])
    services.disconnect(channel)
    assert [name for name, _ in received].count("disconnected") == 1
    received.clear()
    events = ChannelEvent.objects.filter(channel=channel).count()

    assert services.disconnect(Channel.objects.get(pk=channel.pk)) is False
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert api.delete(f"/api/v1/channels/{channel.pk}/").status_code == 204
    page = Client()
    page.force_login(user)
    answer = page.post(reverse("integrations:channel-disconnect", args=[channel.pk]), {"confirm": "yes"}, follow=True)
    assert "was already disconnected" in answer.content.decode()
    assert "could not be reached" not in answer.content.decode()

    assert received == []
    assert ChannelEvent.objects.filter(channel=channel).count() == events
