"""Property-based run of the API against its own OpenAPI schema (Schemathesis 4), served by a live server with the
real local PDS behind it: no request the schema allows (or that Schemathesis derives from it) may answer 5xx.
"""

import json
import re
from types import SimpleNamespace

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import ServerError
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from integrations.api.serializers import ChannelSerializer
from integrations.bluesky import services
from integrations.models import Channel

pytestmark = [pytest.mark.pds, pytest.mark.django_db(transaction=True)]

JWT_RE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")

# ~20 examples per operation keeps the whole run well under a minute against the local PDS. No example database:
# other people run the suite in this tree at the same time.
FUZZ = settings(
    max_examples=20,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def connected(use_pds, account, user, settings):
    """A user with a DRF token and one channel connected to the local PDS."""
    # The connect operation is fuzzed too: let every attempt reach the PDS rather than the throttle.
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (10_000, 300), "ip": (10_000, 300)}
    channel = services.connect(user, account.handle, account.app_passwords[0])
    token = Token.objects.create(user=user)
    return SimpleNamespace(channel=channel, account=account, headers={"Authorization": f"Token {token.key}"})


def load_schema() -> schemathesis.BaseSchema:
    """The schema exactly as /api/schema/ serves it (fetched in-process at collection, when no server runs yet);
    the cases themselves go over HTTP to `live_server`."""
    response = Client(HTTP_HOST="localhost").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return schemathesis.openapi.from_dict(json.loads(response.content))


schema = load_schema()


def aim(case, data: st.DataObject, connected: SimpleNamespace) -> None:
    """Point some examples at real data: random ids are almost never the user's channel, and random identifiers
    almost never pass validation, so without this the fuzzer would hardly reach the PDS."""
    if "id" in (case.path_parameters or {}) and data.draw(st.sampled_from(["generated", "own", "own"])) == "own":
        case.path_parameters = {**case.path_parameters, "id": str(connected.channel.pk)}
    own_channel = case.operation.path == "/api/v1/posts/" and isinstance(case.body, dict)
    if own_channel and data.draw(st.booleans(), label="own channel"):
        case.body = {**case.body, "channel": connected.channel.pk}  # reach the publishing checks and the PDS
    if case.operation.path == "/api/v1/channels/bluesky/" and isinstance(case.body, dict):
        account = connected.account
        identifier = data.draw(
            st.sampled_from([None, account.handle, f" @{account.handle.upper()}", account.email, account.did]),
            label="identifier",
        )
        if identifier is not None:
            case.body = {**case.body, "identifier": identifier}
        if data.draw(st.booleans(), label="real app password"):
            case.body = {**case.body, "app_password": account.app_passwords[0]}


def run(case, connected: SimpleNamespace, live_server):
    """Send the case to the live server as the user: never a 5xx, never a token or the app password in the body."""
    response = case.call_and_validate(
        base_url=live_server.url,
        headers=connected.headers,
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance],
        timeout=30,
    )
    assert not JWT_RE.search(response.text)
    assert connected.account.app_passwords[0] not in response.text
    return response


OPERATIONS = [result.ok() for result in schema.get_all_operations()]


def cases(operation) -> st.SearchStrategy:
    """Schema-valid requests, plus requests that break the schema on purpose (wrong types, missing fields, bad
    ids...) for operations that take parameters or a body."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    if not (operation.path_parameters or operation.body):
        return positive  # nothing to break: negative generation is unsatisfiable here
    return st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))


# One test per operation, each with its own freshly connected channel: DELETE disconnecting the channel (the first
# time an example is aimed at it) cannot starve refresh/events/retrieve of an active channel, and the DELETE
# examples after that exercise deleting an already disconnected channel, which must not 5xx either.
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_operation_answers_a_server_error(operation, connected, live_server):
    @FUZZ
    @given(case=cases(operation), data=st.data())
    def check(case, data):
        aim(case, data, connected)
        run(case, connected, live_server)

    check()


def test_the_check_catches_a_server_error(connected, live_server, monkeypatch):
    """The harness above notices a 5xx: break the list endpoint and the same check fails."""

    def broken(self, obj: Channel):
        raise RuntimeError("boom")

    monkeypatch.setattr(ChannelSerializer, "get_health", broken)
    case = schema["/api/v1/channels/"]["GET"].Case()
    with pytest.raises(FailureGroup) as caught:
        run(case, connected, live_server)
    assert ServerError in [type(failure) for failure in caught.value.exceptions]
    assert "[500]" in str(caught.value)
