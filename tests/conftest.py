import pytest
from django.conf import settings as django_settings
from django.core.cache import cache

from tests.support.localidentity import identities_on
from tests.support.pds.server import LocalPds


@pytest.fixture(scope="session", autouse=True)
def _user_urls_on_loopback():
    """Link-card pages, handles' well-known files and did:web documents are served on loopback here: URLs users name
    may reach loopback addresses and nothing else (no test reaches out to the internet). A test of the production
    rule (public addresses only) turns it off with the `public_only` fixture."""
    from integrations.security import outbound

    with outbound.loopback_only_for_tests():
        yield


@pytest.fixture
def public_only(monkeypatch):
    """URLs users name are held to public addresses over https, as in production (tests/security/test_outbound.py
    patches the resolver and `is_public_address` to stand loopback servers in for the internet)."""
    from integrations.bluesky.xrpc import client
    from integrations.security import outbound

    monkeypatch.setattr(outbound, "_loopback_for_tests", False)
    # Fresh connection pools: a connection opened while loopback was allowed would be reused without a new check.
    monkeypatch.setattr(outbound, "_clients", {})
    monkeypatch.setattr(client, "_requests", {})
    monkeypatch.setattr(client, "_raw_clients", {})


@pytest.fixture(scope="session")
def pds():
    """The local reference PDS, started once for the whole run, with identity resolution pointed at it: its PLC
    directory for DID documents, its well-known endpoint for handles and a loopback DNS server that knows no name
    (tests add TXT records to `pds.dns_zone`)."""
    server = LocalPds()
    with identities_on(server) as zone:
        server.dns_zone = zone
        yield server
    server.stop()


@pytest.fixture(scope="session")
def second_pds(pds):
    """Another reference PDS on loopback, registering its accounts in the first one's PLC directory (started when a
    test first asks for it, then kept for the run)."""
    server = LocalPds(plc_url=pds.plc_url)
    yield server
    server.stop()


@pytest.fixture
def account(pds):
    """A fresh account on the local PDS, with one app password."""
    acct = pds.create_account()
    pds.create_app_password(acct)
    return acct


@pytest.fixture(autouse=True)
def _clean_cache():
    """Options cache and throttle counters start empty in every test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def use_pds(pds, settings, monkeypatch):
    """Point the Bluesky integration at the local PDS (through the env variable, as a self-hoster would)."""
    monkeypatch.setattr(django_settings, "INTEGRATIONS_BLUESKY_SERVICE_URL", pds.url)
    return pds


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-123")


@pytest.fixture
def api(user):
    """An API client signed in with `user`'s token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def alice_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def channel(use_pds, user, account):
    """A channel connected with the account's app password through the service layer (no refresh yet)."""
    from integrations.bluesky import services

    connected = services.connect(user, account.handle, account.app_passwords[0])
    assert use_pds.refresh_count(account.did) == 0
    return connected


def stored(channel):
    """The channel as the database holds it now."""
    from integrations.models import Channel

    return Channel.objects.get(pk=channel.pk)


def as_if_refreshed_long_ago(channel):
    """Move the channel's last rotation back in time, past the window in which user refreshes are coalesced."""
    from datetime import timedelta

    from integrations.conf import app_settings
    from integrations.models import Channel

    if channel.refreshed_at is None:
        return  # never rotated: nothing to coalesce with
    channel.refreshed_at = channel.refreshed_at - timedelta(seconds=app_settings.REFRESH_COALESCE + 1)
    Channel.objects.filter(pk=channel.pk).update(refreshed_at=channel.refreshed_at)


# The smoke suite runs against the installed wheel in its own virtual environment (tests/smoke/run.sh); support/ holds
# the infrastructure (the PDS, the host project, proxies), no tests.
collect_ignore = ["smoke", "support"]
