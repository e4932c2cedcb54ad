"""Secrets stay secret: not in the database file, not in error reports, not in the session."""

import sys
from pathlib import Path

import pytest
from atproto_client.namespaces.sync_ns import ComAtprotoServerNamespace
from django.core.signals import got_request_exception
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from integrations.models import Channel

pytestmark = pytest.mark.pds

CONNECT = reverse("integrations:connect-bluesky")


def database_bytes() -> bytes:
    """Everything the database holds: the SQLite file (with its WAL) byte for byte; on another database, every
    row of every table as text."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(FULL)")
        name = Path(connection.settings_dict["NAME"])
        return b"".join(p.read_bytes() for p in (name, name.with_name(name.name + "-wal")) if p.exists())
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        chunks = []
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT t::text FROM {quote(table)} t")  # table names come from introspection
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks).encode()


@pytest.mark.django_db(transaction=True)
def test_database_holds_no_password_or_token_in_plain_text(use_pds, account, user):
    client = Client()
    client.force_login(user)
    password = account.app_passwords[0]
    assert client.post(CONNECT, {"identifier": account.handle, "app_password": password}).status_code == 302
    assert client.post(reverse("integrations:channel-refresh", args=[Channel.objects.get().pk])).status_code == 302
    channel = Channel.objects.get()
    secrets = [password, channel.access_jwt, channel.refresh_jwt]
    # Each JWT segment too, in case a token were stored split or re-encoded.
    secrets += [part for token in secrets[1:] for part in token.split(".")[1:]]
    data = database_bytes()
    assert len(data) > 1_000
    assert account.did.encode() in data  # what we read holds our rows
    for secret in secrets:
        assert secret.encode() not in data


@pytest.mark.django_db
@pytest.mark.parametrize("via", ["web form", "API"])
def test_app_password_not_in_error_reports_or_session(via, use_pds, account, user, settings, monkeypatch):
    """An unexpected failure deep inside the SDK during createSession: the report mailed to admins (what
    AdminEmailHandler builds) shows neither the POSTed app password nor any frame's copy of it."""
    settings.DEBUG = False
    reports = []

    def capture(sender, request, **kwargs):
        exc_type, exc_value, tb = sys.exc_info()
        reporter = ExceptionReporter(request, exc_type, exc_value, tb, is_email=True)
        reports.append(reporter.get_traceback_text() + reporter.get_traceback_html())

    def explode(self, *args, **kwargs):
        raise RuntimeError("unexpected failure")

    monkeypatch.setattr(ComAtprotoServerNamespace, "create_session", explode)
    got_request_exception.connect(capture)
    password = account.app_passwords[0]
    try:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        url = CONNECT if via == "web form" else "/api/v1/channels/bluesky/"
        response = client.post(url, {"identifier": account.handle, "app_password": password})
    finally:
        got_request_exception.disconnect(capture)
    assert response.status_code == 500
    assert password not in response.content.decode()
    assert len(reports) == 1
    report = reports[0]
    assert "unexpected failure" in report
    assert "app_password" in report  # the parameter is listed, its value hidden
    assert password not in report
    session = client.session
    assert all(password not in str(value) for value in session.values())


@pytest.mark.django_db
def test_password_field_is_not_echoed_back_on_error(use_pds, alice_client, account):
    response = alice_client.post(CONNECT, {"identifier": account.handle, "app_password": "bad-pass-word-1234"})
    assert response.status_code == 400
    assert "bad-pass-word-1234" not in response.content.decode()
