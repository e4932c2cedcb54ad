"""Fixtures of the smoke suite. It runs outside the checkout (see `run.sh`): `pds` is a copy of tests/support/pds."""

import pytest


@pytest.fixture(scope="session")
def pds():
    from pds.server import LocalPds

    server = LocalPds()
    yield server
    server.stop()


@pytest.fixture
def account(pds):
    acct = pds.create_account()
    pds.create_app_password(acct)
    return acct


@pytest.fixture
def use_pds(pds, db):
    """The integration pointed at the local PDS the way an administrator does it: a stored Service URL."""
    from integrations.models import IntegrationOption

    IntegrationOption.objects.update_or_create(key="bluesky_service-url", defaults={"value": pds.url})
    return pds


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-123", team="blue")
