"""No token or app password in any error report, log or debug page, whichever frame holds it.

A write fails at every save point of connect, refresh, disconnect and keep-alive in turn (the database refuses
the N-th INSERT or UPDATE); each time, the HTML and text reports that Django would mail to the admins and show as
the DEBUG page are built with the configured reporter and searched for every secret of the run.
"""

import logging
import re
import sys

import pytest
from django.db import DataError
from django.db.models.sql import compiler
from django.test import Client
from django.urls import reverse
from django.views.debug import get_exception_reporter_class, get_exception_reporter_filter

from integrations.bluesky import services
from integrations.bluesky.accounts import door, keepalive
from integrations.bluesky.xrpc.client import PdsClient
from integrations.models import Channel
from integrations.reporting import CLEANSED, SecretsReporterFilter, redact
from integrations.security.crypto import Secret
from tests.conftest import as_if_refreshed_long_ago

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
SAMPLE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MX0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


# --- the pieces -------------------------------------------------------------------------------------------------
def test_redact_masks_tokens_and_app_passwords_and_nothing_else():
    text = f"Bearer {SAMPLE_JWT} password=abcd-2345-efgh-6789 uuid=123e4567-e89b-12d3-a456-426614174000 did:plc:x"
    masked = redact(text)
    assert SAMPLE_JWT not in masked
    assert "abcd-2345-efgh-6789" not in masked
    assert masked.count(CLEANSED) == 2
    assert "123e4567-e89b-12d3-a456-426614174000" in masked
    assert "did:plc:x" in masked


def test_secret_values_show_stars_however_they_are_printed():
    token = Secret(SAMPLE_JWT)
    assert token == SAMPLE_JWT
    assert f"Bearer {token}" == f"Bearer {SAMPLE_JWT}"
    assert SAMPLE_JWT not in repr(token)
    assert SAMPLE_JWT not in repr({"tokens": [token]})


def test_the_filter_is_active_in_debug_too(settings, rf):
    settings.DEBUG = True
    request = rf.post("/", {"app_password": "abcd-2345-efgh-6789", "identifier": "alice.test"})
    request.sensitive_post_parameters = ["app_password"]
    reporter_filter = get_exception_reporter_filter(request)
    assert isinstance(reporter_filter, SecretsReporterFilter)
    parameters = reporter_filter.get_post_parameters(request)
    assert parameters["app_password"] != "abcd-2345-efgh-6789"
    assert parameters["identifier"] == "alice.test"


def test_a_frame_variable_holding_a_token_is_masked_whatever_its_name(rf):
    def innocent_looking_function():
        payload = {"headers": {"Authorization": f"Bearer {SAMPLE_JWT}"}}  # noqa: F841 -- read from the frame
        raise RuntimeError("boom")

    try:
        innocent_looking_function()
    except RuntimeError:
        reporter = get_exception_reporter_class(None)(None, *sys.exc_info())
        report = reporter.get_traceback_html() + reporter.get_traceback_text()
    assert "payload" in report
    assert SAMPLE_JWT not in report
    assert SAMPLE_JWT.split(".")[1] not in report


def test_the_project_uses_the_masking_reporter_and_the_check_says_so_when_not(settings):
    from integrations.checks import check_exception_reporter

    assert check_exception_reporter() == []
    settings.DEFAULT_EXCEPTION_REPORTER = "django.views.debug.ExceptionReporter"
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = "django.views.debug.SafeExceptionReporterFilter"
    [warning] = check_exception_reporter()
    assert warning.id == "integrations.W005"
    assert "integrations.reporting.SecretsExceptionReporter" in warning.hint


# --- failures at every save point -------------------------------------------------------------------------------
class WriteFailure:
    """Makes the database refuse the N-th INSERT or UPDATE from now on (counting both), as a column that is too
    short for an upstream value would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fail_at: int | None = None
        self.writes = 0
        for cls in (compiler.SQLInsertCompiler, compiler.SQLUpdateCompiler):
            monkeypatch.setattr(cls, "execute_sql", self._wrap(cls.execute_sql))

    def _wrap(self, original):
        def execute_sql(compiler_self, *args, **kwargs):
            self.writes += 1
            if self.fail_at is not None and self.writes == self.fail_at:
                raise DataError("value too long for type character varying(255)")
            return original(compiler_self, *args, **kwargs)

        return execute_sql

    def arm(self, nth: int) -> None:
        self.writes, self.fail_at = 0, nth

    def disarm(self) -> None:
        self.fail_at = None


@pytest.fixture
def issued(monkeypatch):
    """Every session the PDS handed to the app during the test."""
    sessions = []
    original = PdsClient._session

    def spy(result):
        session = original(result)
        sessions.append(session)
        return session

    monkeypatch.setattr(PdsClient, "_session", staticmethod(spy))
    return sessions


def secrets_of(sessions, *passwords) -> set[str]:
    found = {p for p in passwords if p}
    for session in sessions:
        for token in (session.access_jwt, session.refresh_jwt):
            found |= {str(token), *token.split(".")[1:]}
    return found


def reports_for_current_exception() -> str:
    """The admin e-mail (HTML + text) and the DEBUG page for the exception being handled."""
    reporter_class = get_exception_reporter_class(None)
    parts = []
    for is_email in (True, False):
        reporter = reporter_class(None, *sys.exc_info(), is_email=is_email)
        parts += [reporter.get_traceback_html(), reporter.get_traceback_text()]
    return "\n".join(parts)


def assert_no_secret(text: str, secrets: set[str]) -> None:
    leaked = [s[:12] + "…" for s in secrets if s in text]
    assert not leaked, f"secrets in the report: {leaked}"
    assert not JWT.search(text)


def fail_every_write(failure: WriteFailure, flow, *, prepare=None, limit: int = 12) -> list[str]:
    """Run `flow` with the 1st, 2nd, … write failing until it gets through; return the reports of the failures."""
    reports = []
    for nth in range(1, limit + 1):
        state = prepare() if prepare else None
        failure.arm(nth)
        try:
            flow(state)
        except DataError:
            reports.append(reports_for_current_exception())
        else:
            failure.disarm()
            return reports
        finally:
            failure.disarm()
    raise AssertionError(f"the flow still failed at write {limit}")


@pytest.mark.pds
@pytest.mark.django_db(transaction=True)
def test_no_secret_in_reports_when_a_save_fails_anywhere(use_pds, user, account, issued, monkeypatch, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (1000, 300), "ip": (1000, 300), "account": (1000, 300)}
    handle, password = account.handle, account.app_passwords[0]  # the flows see only what a user types
    failure = WriteFailure(monkeypatch)

    connect_reports = fail_every_write(failure, lambda _: services.connect(user, handle, password))
    channel = Channel.objects.get()

    def fresh_channel():
        row = Channel.objects.get(pk=channel.pk)
        if row.refreshed_at:
            as_if_refreshed_long_ago(row)
        return row

    refresh_reports = fail_every_write(failure, services.refresh_channel, prepare=fresh_channel)
    keepalive_reports = fail_every_write(
        failure,
        lambda row: door.refresh(row, seen_generation=row.session_generation, force=True),
        prepare=fresh_channel,
    )
    disconnect_reports = fail_every_write(failure, services.disconnect, prepare=fresh_channel)

    # Each flow failed at its saves of the channel row and its events (a failed profile save fails nothing).
    assert len(connect_reports) >= 2
    assert len(refresh_reports) >= 2
    assert len(keepalive_reports) >= 2
    assert len(disconnect_reports) >= 2
    secrets = secrets_of(issued, password, account.password)
    assert len(issued) >= 4
    for report in connect_reports + refresh_reports + keepalive_reports + disconnect_reports:
        assert "value too long" in report
        assert_no_secret(report, secrets)
    assert_no_secret(caplog.text, secrets)


@pytest.mark.pds
@pytest.mark.django_db(transaction=True)
def test_the_keepalive_sweep_logs_a_failed_save_without_secrets(use_pds, channel, issued, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    failure = WriteFailure(monkeypatch)
    failure.arm(1)
    result = keepalive.sweep(within_days=400)
    assert result.failed == {"internal_error": 1}
    assert "value too long" in caplog.text
    assert_no_secret(caplog.text, secrets_of(issued))


@pytest.mark.pds
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", ["connect", "refresh"])
def test_the_debug_page_shows_neither_password_nor_token(page, use_pds, user, account, issued, monkeypatch, settings):
    """`make run` serves with DEBUG on: its 500 page must not show what was posted or what the PDS sent."""
    password = account.app_passwords[0]
    if page == "refresh":
        channel = services.connect(user, account.handle, password)
        url, data = reverse("integrations:channel-refresh", args=[channel.pk]), {}
    else:
        url, data = reverse("integrations:connect-bluesky"), {"identifier": account.handle, "app_password": password}
    settings.DEBUG = True
    failure = WriteFailure(monkeypatch)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    failure.arm(1)
    response = client.post(url, data)
    failure.disarm()
    assert response.status_code == 500
    page_text = response.content.decode()
    assert "value too long" in page_text  # it is the debug page, with its frames
    assert "Local vars" in page_text or "Traceback" in page_text
    assert_no_secret(page_text, secrets_of(issued, password, account.password))
