"""The API token page (`/app/api-token`): every signed-in user creates, sees once, revokes and regenerates the token
the API authenticates with; the key is shown in the one response that made it and nowhere else."""

import logging
import re

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations import tokens

pytestmark = pytest.mark.django_db

PAGE = "/app/api-token"
CREATE = "/app/api-token/create"
KEY_RE = re.compile(r'<code id="new-key">([0-9a-f]{40})</code>')


def revoke_url(token_id: str) -> str:
    return f"/app/api-token/{token_id}/revoke"


def regenerate_url(token_id: str) -> str:
    return f"/app/api-token/{token_id}/regenerate"


def shown_key(response) -> str:
    found = KEY_RE.search(response.content.decode())
    assert found, "the page shows no new key"
    return found.group(1)


def api_get(key: str, path: str = "/api/v1/channels/"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(path)


def row_id(client: Client) -> str:
    found = re.search(r'data-token="([0-9a-f]+)"', client.get(PAGE).content.decode())
    assert found, "the page lists no token"
    return found.group(1)


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for response in (client.get(PAGE), client.post(CREATE), client.post(revoke_url("abc"), {"confirm": "yes"})):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert not Token.objects.exists()


def test_the_key_is_shown_once_right_after_creation_and_authenticates_the_api(alice_client, user, caplog):
    empty = alice_client.get(PAGE)
    assert empty.status_code == 200
    assert "No API token yet." in empty.content.decode()
    assert "no-store" in empty["Cache-Control"]  # never cached, with or without a key on it

    with caplog.at_level(logging.DEBUG):
        created = alice_client.post(CREATE)
    assert created.status_code == 200  # the key is in this response, not behind a redirect
    assert "no-store" in created["Cache-Control"]
    key = shown_key(created)
    assert Token.objects.get(user=user).key == key
    html = created.content.decode()
    assert "shown only this once" in html
    assert f"Authorization: Token {key}" in html  # how to send it, with the API's own address
    assert "http://testserver/api/v1/channels/" in html
    assert key not in caplog.text  # nothing logged holds the key
    assert not list(created.wsgi_request._messages)  # nor a message (stored in the session)...
    assert key not in str(dict(alice_client.session))  # ...nor the session itself

    assert api_get(key).status_code == 200

    again = alice_client.get(PAGE)  # a reload, or any later visit: that a token exists and when, not the key
    html = again.content.decode()
    assert key not in html
    assert "Created " in html and "data-token=" in html
    assert "No API token yet." not in html


def test_a_second_create_makes_no_second_token_and_shows_no_key(alice_client, user):
    key = shown_key(alice_client.post(CREATE))
    twice = alice_client.post(CREATE, follow=True)  # a form sent twice, or a reload of the POST
    html = twice.content.decode()
    assert "You have an API token already" in html
    assert not KEY_RE.search(html)
    assert Token.objects.get(user=user).key == key


def test_revoking_asks_first_without_javascript_then_the_key_is_refused(alice_client, user):
    key = shown_key(alice_client.post(CREATE))
    token_id = row_id(alice_client)

    asked = alice_client.get(revoke_url(token_id))  # the link of a page without script: the question first
    assert asked.status_code == 200
    assert "Revoke your API token?" in asked.content.decode()
    assert 'name="confirm" value="yes"' in asked.content.decode()
    unconfirmed = alice_client.post(revoke_url(token_id))  # a POST without the confirmation asks too
    assert "Revoke your API token?" in unconfirmed.content.decode()
    assert Token.objects.filter(user=user).exists()
    assert key not in asked.content.decode() + unconfirmed.content.decode()

    done = alice_client.post(revoke_url(token_id), {"confirm": "yes"}, follow=True)
    assert "Revoked your API token." in done.content.decode()
    assert not Token.objects.filter(user=user).exists()
    refused = api_get(key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"

    gone = alice_client.post(revoke_url(token_id), {"confirm": "yes"}, follow=True)  # sent twice: no harm
    assert "already revoked or regenerated" in gone.content.decode()


def test_regenerating_asks_first_shows_the_new_key_once_and_retires_the_old_one(alice_client, user):
    old = shown_key(alice_client.post(CREATE))
    token_id = row_id(alice_client)
    asked = alice_client.get(regenerate_url(token_id))
    assert "Regenerate your API token?" in asked.content.decode()
    assert Token.objects.get(user=user).key == old

    regenerated = alice_client.post(regenerate_url(token_id), {"confirm": "yes"})
    assert regenerated.status_code == 200
    assert "no-store" in regenerated["Cache-Control"]
    new = shown_key(regenerated)
    assert new != old
    assert api_get(old).status_code == 401
    assert api_get(new).status_code == 200

    # The confirmation sent again (a reload of that page) replaces nothing and shows no key.
    resent = alice_client.post(regenerate_url(token_id), {"confirm": "yes"}, follow=True)
    assert "already revoked or regenerated" in resent.content.decode()
    assert not KEY_RE.search(resent.content.decode())
    assert Token.objects.get(user=user).key == new


def test_another_user_cannot_revoke_or_regenerate_yours(alice_client, user, other_user):
    key = shown_key(alice_client.post(CREATE))
    token_id = row_id(alice_client)
    bob = Client()
    bob.force_login(other_user)
    assert token_id not in bob.get(PAGE).content.decode()
    for url in (revoke_url(token_id), regenerate_url(token_id)):
        asked = bob.get(url, follow=True)
        assert "already revoked or regenerated" in asked.content.decode()
        done = bob.post(url, {"confirm": "yes"}, follow=True)
        assert "already revoked or regenerated" in done.content.decode()
        assert not KEY_RE.search(done.content.decode())
    assert Token.objects.get(user=user).key == key
    assert not Token.objects.filter(user=other_user).exists()
    assert api_get(key).status_code == 200


def test_the_row_id_is_not_the_key(user):
    key = tokens.create(user)
    (row,) = tokens.tokens_of(user)
    assert key not in row.id and row.id not in key
    assert key not in repr(row)


def test_every_page_links_to_the_token_page(alice_client):
    html = alice_client.get("/app/channels").content.decode()
    assert f'href="{PAGE}"' in html
