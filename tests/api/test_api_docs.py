"""What the API's OpenAPI schema and docs page tell a newcomer: what the API does, how to get and send a token,
what `reply_to` and `quote` take, an upload as a file, and for each operation only the errors it can give."""

import re

import pytest

pytestmark = pytest.mark.django_db

SCHEMA = "/api/schema/"
DOCS = "/api/docs/"

# Each operation's error statuses, from its code path (integrations/api/channels.py and posts.py say what gives each).
PDS_CALLED = {429, 502, 503}
EXPECTED_ERRORS = {
    ("get", "/api/v1/channels/"): {400, 401},
    ("get", "/api/v1/channels/{id}/"): {401, 404},
    ("delete", "/api/v1/channels/{id}/"): {401, 403, 404},
    ("post", "/api/v1/channels/bluesky/"): {400, 401, 403, 409, 413, 415} | PDS_CALLED,
    ("post", "/api/v1/channels/{id}/refresh/"): {401, 403, 404, 409} | PDS_CALLED,
    ("get", "/api/v1/channels/{id}/events/"): {400, 401, 404},
    ("get", "/api/v1/channels/{id}/posts/"): {400, 401, 403, 404, 409} | PDS_CALLED,
    ("post", "/api/v1/channels/{id}/remove/"): {401, 403, 404, 409},
    ("post", "/api/v1/media/"): {400, 401, 403, 413, 415, 429},
    ("get", "/api/v1/posts/"): {400, 401},
    ("get", "/api/v1/posts/{id}/"): {401, 404},
    ("post", "/api/v1/posts/"): {400, 401, 403, 404, 409, 413, 415} | PDS_CALLED,
    ("patch", "/api/v1/posts/{id}/"): {400, 401, 403, 404, 409, 413, 415} | PDS_CALLED,
    ("delete", "/api/v1/posts/{id}/"): {400, 401, 403, 404, 409} | PDS_CALLED,
    ("post", "/api/v1/posts/{id}/cancel/"): {401, 403, 404, 409},
    ("post", "/api/v1/posts/{id}/publish/"): {401, 403, 404, 409},
}


@pytest.fixture
def schema(api):
    response = api.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    return response.json()


def component(schema, name):
    return schema["components"]["schemas"][name]


def test_an_upload_is_a_binary_file_in_the_schema(schema):
    body = schema["paths"]["/api/v1/media/"]["post"]["requestBody"]["content"]
    assert list(body) == ["multipart/form-data"]
    ref = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    file = component(schema, ref)["properties"]["file"]
    assert file["type"] == "string"
    assert file["format"] == "binary"  # not "uri": Swagger's "Try it out" and generated clients send the file


@pytest.mark.parametrize("name", ["PostInput", "PatchedPostUpdate"])
def test_reply_to_and_quote_say_what_they_take(schema, name):
    properties = component(schema, name)["properties"]
    for field in ("reply_to", "quote"):
        description = properties[field].get("description", "")
        assert "bsky.app" in description and "at://" in description, (name, field, description)
        assert "Empty" in description
    for field in ("reply_to", "quote"):
        assert "at://" in component(schema, "Post")["properties"][field]["description"]


def test_each_operation_lists_only_the_errors_it_can_give_each_described(schema):
    found = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            errors = {int(code): response for code, response in operation["responses"].items() if int(code) >= 400}
            found[(method, path)] = set(errors)
            for code, response in errors.items():
                assert response["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
                assert len(response.get("description", "")) > 10, (method, path, code)
    assert found == EXPECTED_ERRORS
    reads = [key for key in found if key[0] == "get"]
    assert all(413 not in found[key] for key in reads)
    assert [key for key in reads if 409 in found[key]] == [("get", "/api/v1/channels/{id}/posts/")]


def test_the_description_says_what_the_api_does_and_how_to_get_and_send_a_token(schema):
    description = schema["info"]["description"]
    for words in ("publish", "scheduled", "thread", "reply_to", "quote", "Channels", "Media", "Posts", "feed"):
        assert words in description, words
    assert "/app/api-token" in description
    assert "Authorization: Token <key>" in description


def test_the_docs_page_leads_back_to_the_app_without_inline_code_of_its_own(api):
    response = api.get(DOCS)
    assert response.status_code == 200
    html = response.content.decode()
    bar = re.search(r'<nav class="skyport-bar".*?</nav>', html, re.S)
    assert bar, "no way back to the app"
    assert 'href="/app/channels"' in bar.group(0)
    assert 'href="/app/api-token"' in bar.group(0)
    assert not re.search(r"\sstyle=|\son\w+=|<script|<style", bar.group(0))  # nothing a CSP would have to allow
    assert re.search(r'<link rel="stylesheet" href="/static/integrations/api_docs\.css">', html)
