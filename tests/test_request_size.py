"""A request body over INTEGRATIONS_MAX_REQUEST_BYTES is refused by its declared length before any of it is read
(issue 16, item 17): no 500 MB spooled to /tmp before a 50 MB refusal."""

import socket
import time
from urllib.parse import urlsplit

import pytest
from django.test import Client

from integrations import checks

pytestmark = pytest.mark.django_db

HALF_A_GIGABYTE = 500_000_000


def test_a_declared_500_mb_upload_to_the_composer_is_refused_unread(alice_client):
    """The test client's body holds 1,000 bytes: reading past them would fail. The refusal reads none."""
    response = alice_client.post(
        "/app/posts/new", data=b"x" * 1000, content_type="multipart/form-data; boundary=x", CONTENT_LENGTH="500000000"
    )
    assert response.status_code == 413
    page = response.content.decode()
    assert "This request is 500 MB; at most 100 MB can be sent at once." in page and "Nothing was sent" in page


def test_the_api_answers_in_its_error_shape(api):
    response = api.post(
        "/api/v1/media/", data=b"x" * 1000, content_type="multipart/form-data; boundary=x", CONTENT_LENGTH="100000001"
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": "request_too_large",
            "message": "This request is 101 MB; at most 100 MB can be sent at once. Send fewer or smaller images.",
        }
    }


def test_a_content_length_that_is_no_number_is_a_400():
    response = Client().post("/app/posts/new", data=b"", content_type="text/plain", CONTENT_LENGTH="lots")
    assert response.status_code == 400


def test_the_limit_is_a_setting(alice_client, settings):
    settings.INTEGRATIONS_MAX_REQUEST_BYTES = 500
    response = alice_client.post("/app/posts/new", {"text": "x" * 600})
    assert response.status_code == 413


@pytest.mark.django_db(transaction=True)
def test_a_real_500_mb_upload_is_refused_after_its_headers_and_nothing_is_spooled(live_server, settings, tmp_path):
    """Over a socket, as a client streams it: the answer comes while the client has sent 2 MB of the 500, and the
    folder uploads are spooled to stays empty."""
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    address = urlsplit(live_server.url)
    boundary = "----skyport"
    head = (
        f"POST /api/v1/media/ HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {HALF_A_GIGABYTE}\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=20) as client:
        client.sendall(head)
        started = time.monotonic()
        for _ in range(32):  # 2 MB of the 500
            try:
                client.sendall(b"\xff" * 65536)
            except OSError:
                break  # the server answered and closed
        answer = b""
        while b"request_too_large" not in answer and (chunk := client.recv(65536)):
            answer += chunk
        answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '"code":"request_too_large"' in answer.replace(" ", "")
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_a_project_without_the_middleware_is_told(settings):
    assert checks.check_request_size_limit() == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != checks.MIDDLEWARE_PATH]
    [warning] = checks.check_request_size_limit()
    assert warning.id == "integrations.W007" and "client_max_body_size" in warning.hint
    csrf = "django.middleware.csrf.CsrfViewMiddleware"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, checks.MIDDLEWARE_PATH]  # after CSRF: too late
    assert [w.id for w in checks.check_request_size_limit()] == ["integrations.W007"]
    assert csrf in settings.MIDDLEWARE
