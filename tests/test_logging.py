"""Log lines: a user's values cannot forge lines or paint a terminal (issue 16, item 18), and with DEBUG off an
unhandled exception is logged to stderr with its traceback, secrets masked (item 19)."""

import io
import logging

import pytest

from integrations.logs import SecretsFormatter, escape_controls

pytestmark = pytest.mark.django_db

HOSTILE = "evil\x1b[31m RED\x1b[0m\r\n2026-12-01 INFO integrations fake line\x85next\u2028sep\u202ebidi\x00nul\x9b"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmFiYyJ9.c2lnbmF0dXJlLWJ5dGVz"


def no_controls(text: str) -> bool:
    return not any(char in text for char in "\x1b\r\n\x85\u2028\u202e\x00\x9b")


def test_control_characters_are_written_as_escapes():
    escaped = escape_controls(HOSTILE)
    assert no_controls(escaped)
    assert "\\x1b[31m" in escaped and "\\r\\n" in escaped and "\\x85" in escaped and "\\u2028" in escaped
    assert escape_controls("café 🦋 @alice.bsky.social") == "café 🦋 @alice.bsky.social"  # text stays readable


def test_every_value_the_app_logs_is_escaped_whatever_the_handler(caplog):
    caplog.set_level(logging.INFO, logger="integrations")
    logging.getLogger("integrations.bluesky.posts.linkcards").info(
        "no link card for %s: %r", HOSTILE, ValueError(HOSTILE)
    )
    logging.getLogger("integrations.anything.new").warning("mapping %(value)s", {"value": HOSTILE})
    logging.getLogger("integrations").info(f"pre-formatted {HOSTILE}")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert all(no_controls(message) for message in messages), messages
    assert "evil\\x1b[31m RED" in messages[0] and "ValueError('evil\\x1b" in messages[0]


def test_a_link_from_a_post_is_logged_escaped(caplog, settings):
    """The real path: a post's link whose page cannot be read is logged with the link as the post wrote it."""
    from integrations.bluesky.posts import linkcards

    settings.INTEGRATIONS_LINK_CARDS = True
    caplog.set_level(logging.INFO, logger="integrations")
    result = linkcards.fetch_card("http://127.0.0.1:9/\x1b[2J\x1b[31mgotcha\x85")
    assert result.card is None
    lines = [record.getMessage() for record in caplog.records if "no link card" in record.getMessage()]
    assert lines and all(no_controls(line) for line in lines)
    assert "\\x1b[2J" in lines[0]


def test_other_libraries_records_are_left_as_they_are(caplog):
    caplog.set_level(logging.INFO, logger="somelibrary")
    logging.getLogger("somelibrary").info("raw %s", "a\tb")
    assert caplog.records[-1].getMessage() == "raw a\tb"


def request_error_handlers() -> list[logging.Handler]:
    return [handler for handler in logging.getLogger("django.request").handlers if handler.level <= logging.ERROR]


def test_with_debug_off_an_unhandled_exception_is_logged_to_stderr_without_its_secrets(
    client, user, monkeypatch, settings
):
    from django.test import Client

    from integrations.bluesky import services
    from integrations.models import Channel

    settings.DEBUG = False
    handlers = [handler for handler in request_error_handlers() if isinstance(handler, logging.StreamHandler)]
    assert handlers, "nothing logs django.request errors"
    assert all(isinstance(handler.formatter, SecretsFormatter) for handler in handlers)
    names = settings.LOGGING["loggers"]["django.request"]["handlers"]
    configured = [settings.LOGGING["handlers"][name] for name in names]
    assert all(handler.get("stream", "ext://sys.stderr") == "ext://sys.stderr" for handler in configured)
    stderr = io.StringIO()
    previous = [handler.setStream(stderr) for handler in handlers]

    def boom(channel):
        session = {"accessJwt": JWT}  # noqa: F841  (a frame holding a token)
        raise RuntimeError(f"the PDS answered {JWT}\r\nFAKE LINE")

    monkeypatch.setattr(services, "health", boom)
    Channel.objects.create(user=user, did="did:plc:x", handle="x.test", service_url="https://bsky.social")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    try:
        response = client.get("/app/channels")
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)
    assert response.status_code == 500
    written = stderr.getvalue()
    assert "Internal Server Error: /app/channels" in written
    assert "Traceback (most recent call last)" in written and "RuntimeError: the PDS answered" in written
    assert JWT not in written and "********************" in written
    assert "\\r\\nFAKE LINE" in written and "\r\nFAKE LINE" not in written


def test_with_debug_on_the_console_shows_it_once(settings):
    """DEBUG on: Django's own console handler prints it; ours stays quiet rather than print it twice."""
    settings.DEBUG = True
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error: /", (), None)
    assert not any(handler.filter(record) for handler in request_error_handlers())
