"""Contract tests: the API against its own OpenAPI schema with Schemathesis 4's engine (the phases and checks of
`schemathesis run`, through its Python API), served by `live_server` with the real local PDS behind it.

One run covers every operation in every phase: examples, coverage (boundary values: empty and longest strings and
lists, missing fields, every declared encoding), fuzzing (schema-valid and schema-breaking data) and stateful
(create -> read -> edit -> delete chains through the schema's OpenAPI links), with every check, as two plain users
and a superuser whose objects must stay their own. Ids, channels, media, references, sign-in identifiers and dates
are drawn part of the time from the seeded data and from dictionaries of edge cases, so requests reach the PDS
instead of stopping at "not found". What the schema cannot say is excepted at the top of the file (`DOCUMENTED_*`),
nowhere else.
"""

import io
import json
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from integrations.bluesky import services
from integrations.bluesky.posts import richtext
from integrations.bluesky.posts.accept import ImageRequest, PartRequest, accept
from integrations.bluesky.posts.media import store_media
from integrations.bluesky.posts.plans import web_url
from integrations.bluesky.posts.submit import publish
from integrations.models import ChannelEvent, Post

pytestmark = [pytest.mark.pds, pytest.mark.django_db(transaction=True)]

# The run's size: about a minute and a half of requests on a 2-core machine (the whole file stays under 3 minutes).
MAX_EXAMPLES = 12
STATEFUL_STEPS = 12
SEED = 23  # a fixed seed: the same requests every run, so a failure is reproducible and a pass means something

# --- documented refusals the schema cannot express --------------------------------------------------------------
# Schema-valid requests the API refuses by a documented rule that JSON Schema cannot state (positive_data_acceptance
# would report each as "valid data rejected"). Keyed by the error code the API answers with (400 unless noted), and
# for the generic `invalid` code by the field and the exact message. Nothing else is excepted anywhere. A limit the
# schema states (parts, images and languages by maxItems, alt text by maxLength) is never excepted: a schema-valid
# list or text refused for its length is a failure.
DOCUMENTED_REFUSALS = {
    # Text length counts graphemes after links are shortened (300); JSON Schema counts code points.
    "post_too_long": "300 graphemes per part, counted after links are shortened",
    "empty_post": "a part needs visible text or an image; whitespace-only text is a string of length >= 0",
    "scheduled_in_the_past": "a time in the past (or only seconds ahead) depends on the clock, not on the format",
    "scheduled_too_far": "at most a year ahead, which depends on the clock, not on the format",
    "invalid_reference": "reply_to/quote must name an existing post (bsky.app address or at:// URI)",
    "invalid_language": "langs must be BCP 47 tags (only the tag's syntax: at most 3 is the schema's maxItems)",
    "media_not_found": "images must name the user's own uploads",
    "invalid_credentials": "a wrong app password or an identifier with no account",
    "main_password_refused": "an account's main password instead of an app password",
    "invalid_identifier": "a handle, email or DID that is not well formed",
    "account_not_found": "an identifier with no account on the PDS",
    "invalid_cursor": "cursors are opaque: only one this list gave is accepted",
    "invalid_image": "the upload must be an image (sniffed from its content)",
    "unsupported_image": "the upload must be a JPEG, PNG, WebP or GIF",
    "animated_image": "an animated image is refused on the API (its author chooses the frame)",
    "image_too_large": "an image over the size/pixel limits",
    "link_card_unavailable": "a link card for a page that cannot be read",
    "channel_disconnected": "publishing through a channel without a session (409)",
    "alt_text_required": "an image's alt text needs visible characters while INTEGRATIONS_POST_ALT_TEXT_REQUIRED is on "
    "(the default); the schema leaves `alt` optional because the setting can turn the rule off",
}
# Codes excepted only for these words: the rest of what they say, the schema states.
DOCUMENTED_ONLY_AS = {"invalid_language": " is not a language tag "}
DOCUMENTED_FIELD_REFUSALS = {
    ("channel", "Not one of your channels."): "the channel id must be one of the user's own channels",
    ("*", "Null characters are not allowed."): "text fields refuse U+0000 (DRF), which OpenAPI 3.0 cannot say short "
    "of a pattern on every string",
    ("identifier", "*"): "a handle, email or DID: their syntax (domain segments and TLDs, DID methods) is checked as "
    "the web form checks it, not by a pattern",
    ("file", "The submitted data was not a file. Check the encoding type on the form."): "the image must be sent as "
    "a file part (with a filename); a plain form field of the same name is not an upload",
    ("parts", "Give the parts too when changing reply_to or quote."): "an edit changes `reply_to` or `quote` only "
    "with `parts` (the content is checked as a whole); OpenAPI 3.0 cannot make one property required by another's "
    "presence",
    ("url", "Enter a valid URL."): "a link card's address is checked by Django's URL validator (host names and "
    "top-level domains as browsers accept them), stricter than JSON Schema's `format: uri`; the schema states "
    "`format: uri` and the http(s) pattern",
}
# Schemathesis' own rules that meet an API rule the schema states in words, by check and operation.
DOCUMENTED_STATEFUL = {
    ("use_after_free", "DELETE /api/v1/channels/"): "DELETE disconnects a channel, which stays listed (health "
    "`disconnected`) until it is reconnected or removed (POST .../remove/), as the operation's description says",
}


def png(color=(200, 30, 90)) -> io.BytesIO:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    buffer.seek(0)
    buffer.name = "seed.png"
    return buffer


def seed_user(django_user_model, pds, name, **extra):
    """A user with a token, a channel connected to its own PDS account, an upload, a published post and three
    scheduled ones (one with the image)."""
    user = django_user_model.objects.create_user(name, password=f"{name}-password-123", **extra)
    account = pds.create_account()
    pds.create_app_password(account)
    channel = services.connect(user, account.handle, account.app_passwords[0])
    media = store_media(user, png())
    published = accept(user, channel, [PartRequest(text=f"Hello from {name}")])
    publish(published.pk, claimed=published)
    published = Post.objects.prefetch_related("parts").get(pk=published.pk)
    assert published.status == Post.Status.PUBLISHED
    later = timezone.now() + timedelta(days=30)
    scheduled = [
        accept(user, channel, [PartRequest(text=f"Later, {name} {n}", images=images)], scheduled_at=later)
        for n, images in enumerate([(ImageRequest(media.pk, "a square"),), (), ()])
    ]
    return SimpleNamespace(
        user=user,
        account=account,
        channel=channel,
        media=media,
        published=published,
        scheduled=scheduled,
        token=Token.objects.create(user=user).key,
    )


def post_elsewhere(server, zone) -> SimpleNamespace:
    """A post by an account on another PDS (its handle resolved by a DNS TXT record): replying to it or quoting it
    means reading it from that server, as its DID document names it (the channel's PDS has no AppView to ask)."""
    author = server.create_account()
    zone.txt[f"_atproto.{author.handle}"] = [f"did={author.did}"]
    uri = server.create_post(author, "Posted on another server")["uri"]
    rkey = uri.rsplit("/", 1)[1]
    return SimpleNamespace(author=author, uri=uri, url=f"https://bsky.app/profile/{author.handle}/post/{rkey}")


@pytest.fixture
def world(use_pds, second_pds, django_user_model, settings):
    """Alice and Bob as `seed_user` makes them, a spare account Alice connects, disconnects and removes (her main
    channel keeps its session for the whole run), two more scheduled posts of Alice's that only edits aim at, a
    post on another PDS to reply to and quote, and a superuser who owns nothing."""
    settings.INTEGRATIONS_CONNECT_RATES = {scope: (100_000, 300) for scope in ("user", "ip", "account")}
    settings.INTEGRATIONS_POST_RATES = {"user": (100_000, 60), "user_day": (100_000, 86400)}
    settings.INTEGRATIONS_UPLOADS_PER_HOUR = 100_000
    settings.INTEGRATIONS_LINK_CARDS = True  # fetched, and held on loopback (`loopback_only`)
    alice = seed_user(django_user_model, use_pds, "alice")
    bob = seed_user(django_user_model, use_pds, "bob")
    spare = use_pds.create_account()
    spare.app_password = use_pds.create_app_password(spare)
    alice.spare = spare
    alice.spare_channel = services.connect(alice.user, spare.handle, spare.app_password)
    later = timezone.now() + timedelta(days=30)
    alice.editable = [
        accept(alice.user, alice.channel, [PartRequest(text=f"To edit {n}")], scheduled_at=later) for n in range(2)
    ]
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-password-123")
    zone_before = dict(use_pds.dns_zone.txt)
    yield SimpleNamespace(
        alice=alice,
        bob=bob,
        admin=Token.objects.create(user=admin).key,
        pds=use_pds,
        elsewhere=post_elsewhere(second_pds, use_pds.dns_zone),
    )
    use_pds.dns_zone.txt.clear()
    use_pds.dns_zone.txt.update(zone_before)


LOCAL_NAMES = ("localhost", ".test", ".example")


@pytest.fixture
def loopback_only(monkeypatch):
    """Generated text never leaves the machine: on top of the suite's rule (URLs users name may reach loopback
    addresses only, `outbound.loopback_only_for_tests`), a name that is not local is not even looked up: the
    system resolver is never asked, so nothing waits on a DNS time-out and no generated host name reaches a DNS
    server. `*.test`, `*.example` and localhost resolve to 127.0.0.1 (tests/support/localidentity.py); the DNS lookups
    of handles go to the suite's loopback DNS server. Yields the names refused."""
    refused: list[str] = []
    resolve = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
        except OSError:
            if not (name == "localhost" or name.endswith(LOCAL_NAMES)):
                refused.append(name)
                raise socket.gaierror(socket.EAI_NONAME, "not looked up in the contract tests") from None
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return refused


def raw_schema() -> dict:
    """The schema exactly as /api/schema/ serves it."""
    response = Client(HTTP_HOST="localhost").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def aimed_at_seeded_data(schema: dict, world, in_a_month: str) -> dict:
    """The served schema with `example`s from the seeded data; no constraint is touched. The coverage phase takes
    no dictionaries: its valid values come from examples, so without them its edits go to post 0 (404), its posts
    are scheduled in the year 2000 (refused before anything else is checked) and reply to nothing."""
    for name in ("PostInput", "PatchedPostUpdate"):
        properties = schema["components"]["schemas"][name]["properties"]
        properties["scheduled_at"]["example"] = in_a_month
        properties["reply_to"]["example"] = world.elsewhere.url
        properties["quote"]["example"] = world.elsewhere.uri
    for parameter in schema["paths"]["/api/v1/posts/{id}/"]["patch"]["parameters"]:
        if parameter["name"] == "id":
            parameter["example"] = str(world.alice.editable[0].pk)
    # One past each limit the schema states. Schemathesis drops an example its schema refuses, so these are sent
    # only if a limit went missing from the schema: then they are "valid" and the API's refusal is reported.
    components = schema["components"]["schemas"]
    components["PostInput"]["properties"]["parts"]["example"] = [{"text": "one of too many"}] * 26
    components["PartInput"]["properties"]["langs"]["example"] = ["en", "de", "fr", "es"]
    image = {"media": world.alice.media.pk, "alt": "a square"}
    components["PartInput"]["properties"]["images"]["example"] = [image] * 5
    components["ImageInput"]["properties"]["alt"]["example"] = "x" * 2001
    cards = components["PartInput"]["properties"]["link_card"]["oneOf"]
    next(card for card in cards if "properties" in card)["properties"]["url"]["example"] = "ftp://example.test/page"
    return schema


EDGE_DATES = [
    "2027-02-29T12:00:00Z",  # no such day
    "2027-01-01T24:00:00Z",  # hour 24
    "2027-13-01T12:00:00Z",  # month 13
    "2027-01-01T12:60:00Z",  # minute 60
    "2030-12-31T23:59:60Z",  # a leap second: valid RFC 3339, read as :59
    "2027-01-01T12:00:00+24:00",  # offset out of range
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "2027-01-01T12:00:00",  # no time zone
]
# Drawn for most `scheduled_at` a generated body holds (the rest is Schemathesis' own): the invalid ones in negative
# cases, the leap second, the extremes and a time a month ahead (a post that can be scheduled) in positive ones.
DATES_PROBABILITY = 0.7


def contract_config(world, live_server, users_file, in_a_month: str) -> SchemathesisConfig:
    alice, bob = world.alice, world.bob
    posts = [p.pk for who in (alice, bob) for p in (who.published, *who.scheduled)]
    # A well-formed DID no PDS here hosts and the PLC directory does not know.
    not_hosted = "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/3kabcdefghij2"
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": live_server.url,
            "continue-on-failure": True,
            "request-timeout": 30,
            "suppress-health-check": ["all"],
            "cache": {"enabled": False},  # nothing written into the checkout
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "checks": {"enabled": True, "max_response_time": 10},
            "auth": {"wfc": {"path": str(users_file), "peers": ["alice", "bob", "admin"]}},
            "dictionaries": {
                "channels": {"values": [alice.channel.pk, alice.channel.pk, bob.channel.pk]},
                # `<id>\n`: a path id with a newline (not an id: it must meet the API's JSON 404).
                "channel_ids": {"values": [str(alice.channel.pk), str(bob.channel.pk), f"{alice.channel.pk}\n"]},
                "spare_channel_ids": {"values": [str(alice.spare_channel.pk), str(bob.channel.pk)]},
                "post_ids": {"values": [*(str(pk) for pk in posts), f"{posts[0]}\n"]},
                # Edits aim at scheduled posts no other operation's ids name (so they are still there to edit),
                # and at a published one (409) and another user's (404).
                "editable_post_ids": {
                    "values": [*(str(p.pk) for p in alice.editable), str(alice.published.pk), str(bob.scheduled[0].pk)]
                },
                "media": {"values": [alice.media.pk, alice.media.pk, bob.media.pk]},
                "references": {
                    "values": [
                        web_url(alice.published.parts.first().uri),
                        bob.published.parts.first().uri,
                        not_hosted,
                        # On the second PDS: read from there (the channel's own PDS answers 502 for it).
                        world.elsewhere.url,
                        world.elsewhere.uri,
                    ]
                },
                "identifiers": {
                    "values": [
                        alice.spare.handle,
                        f" @{alice.spare.handle.upper()}",
                        alice.spare.email,
                        alice.spare.did,
                    ]
                },
                "app_passwords": {"values": [alice.spare.app_password, alice.spare.password, "abcd-efgh-ijkl-mnop"]},
                "dates": {"values": [*EDGE_DATES, in_a_month]},
            },
            "parameters": {
                "body.channel": {"dictionary": "channels", "probability": 0.7},
                "body.parts[*].images[*].media": {"dictionary": "media", "probability": 0.7},
                "body.reply_to": {"dictionary": "references", "probability": 0.5},
                "body.quote": {"dictionary": "references", "probability": 0.3},
                "body.scheduled_at": {"dictionary": "dates", "probability": DATES_PROBABILITY},
                "body.identifier": {"dictionary": "identifiers", "probability": 0.7},
                "body.app_password": {"dictionary": "app_passwords", "probability": 0.7},
            },
            "operations": [
                {
                    # The main endpoint, where most rules live: more examples.
                    "include-operation-id": "v1_posts_create",
                    "generation": {"max-examples": 3 * MAX_EXAMPLES},
                },
                {
                    # An edit that answers 200 must have saved what was sent, in every encoding the schema offers.
                    "include-operation-id": "v1_posts_partial_update",
                    "generation": {"max-examples": 2 * MAX_EXAMPLES},
                    "parameters": {"path.id": {"dictionary": "editable_post_ids", "probability": 0.8}},
                },
                {
                    "include-path-regex": "^/api/v1/posts/\\{id\\}/",
                    "exclude-operation-id": "v1_posts_partial_update",
                    "parameters": {"path.id": {"dictionary": "post_ids", "probability": 0.7}},
                },
                {
                    # Disconnecting and removing aim at the spare channel: the main one keeps its session.
                    "include-operation-id": ["v1_channels_destroy", "v1_channels_remove_create"],
                    "parameters": {"path.id": {"dictionary": "spare_channel_ids", "probability": 0.7}},
                },
                {
                    "include-path-regex": "^/api/v1/channels/\\{id\\}/",
                    "exclude-operation-id": ["v1_channels_destroy", "v1_channels_remove_create"],
                    "parameters": {"path.id": {"dictionary": "channel_ids", "probability": 0.7}},
                },
            ],
        }
    )


def documented_refusal(context, failure, case, response) -> bool:
    """`filter_failure` hook: keep every failure but a schema-valid request refused by a rule in
    `DOCUMENTED_REFUSALS` (in the words of `DOCUMENTED_ONLY_AS`) or `DOCUMENTED_FIELD_REFUSALS`, and the cases of
    `DOCUMENTED_STATEFUL`."""
    freed = getattr(failure, "free", "")
    if any(check in failure.checks and freed.startswith(prefix) for check, prefix in DOCUMENTED_STATEFUL):
        return False
    if "positive_data_acceptance" not in failure.checks:
        return True
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return True
    if error.get("code") in DOCUMENTED_REFUSALS:
        return DOCUMENTED_ONLY_AS.get(error["code"], "") not in str(error.get("message"))
    refused = set(field_errors(error.get("fields") or {}))
    if not refused:
        return True
    # Excepted only when every field error is a documented one.
    return not all(
        any(field in ("*", name) and message in ("*", text) for field, message in DOCUMENTED_FIELD_REFUSALS)
        for name, text in refused
    )


def field_errors(fields: Any, name: str = "") -> Iterator[tuple[str, str]]:
    """(field, message) for every message in the error's `fields`, however deep (`parts` → index → `link_card` →
    `url`): the field is the innermost name."""
    if isinstance(fields, dict):
        for key, value in fields.items():
            yield from field_errors(value, name if str(key).isdigit() else str(key))
    elif isinstance(fields, list):
        for item in fields:
            yield from field_errors(item, name) if isinstance(item, dict | list) else [(name, str(item))]


# --- what the API promises beyond its schema ----------------------------------------------------------------------
PYTHON_REPR = re.compile(r"ErrorDetail\(|\{\d+: |\[\{'|code='")


@schemathesis.check
def readable_error_message(ctx, response, case):
    """An error's `message` is a sentence for a person, never a Python repr of the field errors."""
    if response.status_code < 400 or "json" not in (response.headers.get("content-type") or [""])[0]:
        return None
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None  # the shape is response_schema_conformance's to judge
    assert not PYTHON_REPR.search(str(message)), f"error.message shows Python internals: {message!r}"
    return None


def _sent_parts(case) -> list | None:
    body = case.body if isinstance(case.body, dict) else None
    parts = body.get("parts") if body else None
    if (
        not isinstance(parts, list)
        or not parts
        or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts)
    ):
        return None
    return parts


@schemathesis.check
def what_was_sent_is_saved(ctx, response, case):
    """A post created or edited with `parts` (2xx) holds those parts: an answer never reports as saved a body
    whose fields were dropped."""
    if (case.method, case.path) not in {("POST", "/api/v1/posts/"), ("PATCH", "/api/v1/posts/{id}/")}:
        return None
    if not 200 <= response.status_code < 300 or (sent := _sent_parts(case)) is None:
        return None
    try:
        expected = [richtext.detect(part["text"]).text for part in sent]
    except Exception:
        return None  # the API refused or reshaped it for a reason of its own; other checks judge the answer
    stored = [part["text"] for part in response.json()["parts"]]
    assert stored == expected, f"sent parts {expected!r}, the answer ({response.status_code}) holds {stored!r}"
    return None


@schemathesis.check
def disconnect_is_idempotent(ctx, response, case):
    """Disconnecting a channel that is already disconnected changes nothing: no second "disconnected" event (the
    history shown would fill with them)."""
    if case.method != "DELETE" or case.path != "/api/v1/channels/{id}/" or response.status_code != 204:
        return None
    kinds = list(
        ChannelEvent.objects.filter(channel_id=case.path_parameters["id"])
        .order_by("created_at", "pk")
        .exclude(kind=ChannelEvent.Kind.PROFILE_UPDATED)
        .values_list("kind", flat=True)
    )
    twice = [n for n in range(1, len(kinds)) if kinds[n] == kinds[n - 1] == ChannelEvent.Kind.DISCONNECTED]
    assert not twice, f"the channel's history records `disconnected` twice in a row: {kinds}"
    return None


def keep_main_channel(world):
    """`after_call` hook: the seeded channel of Alice is connected again whenever a request disconnected it (an id
    drawn at random, or read from a list, may name it), so the rest of the run can still publish."""
    main = world.alice.channel

    def after_call(context, case, response):
        disconnected = case.method == "DELETE" and case.path == "/api/v1/channels/{id}/" and response.status_code == 204
        if disconnected and str(case.path_parameters.get("id")) == str(main.pk):
            services.connect(world.alice.user, world.alice.account.handle, world.alice.account.app_passwords[0])

    return after_call


def run_contract(world, live_server, tmp_path):
    """Run every phase; the failures found, one per (check, operation, title), and the counts of requests."""
    users = tmp_path / "users.json"
    users.write_text(
        json.dumps(
            {
                "auth": [
                    {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Token {token}"}]}
                    for name, token in (("alice", world.alice.token), ("bob", world.bob.token), ("admin", world.admin))
                ]
            }
        )
    )
    in_a_month = (timezone.now() + timedelta(days=30)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    schema = schemathesis.openapi.from_dict(
        aimed_at_seeded_data(raw_schema(), world, in_a_month),
        config=contract_config(world, live_server, users, in_a_month),
    )
    schema.hooks.register_hook_with_name(documented_refusal, "filter_failure")
    schema.hooks.register_hook_with_name(keep_main_channel(world), "after_call")
    failures: dict[tuple[str, str, str], str] = {}
    requests: Counter[str] = Counter()
    errors: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            requests[event.phase.value] += len(event.recorder.interactions)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    interaction = event.recorder.interactions.get(case_id)
                    answer = interaction.response if interaction else None
                    answered = f"{answer.status_code} {answer.text[:300]}" if answer is not None else "-"
                    failures.setdefault(
                        (check.name, failure.operation or "", failure.title),
                        f"[{event.phase.value}] {failure.message}\n    {check.failure_info.code_sample[:1500]}\n"
                        f"    -> {answered}",
                    )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(str(getattr(event, "info", event)))
    return failures, requests, errors


def test_the_api_keeps_its_contract(world, live_server, loopback_only, tmp_path):
    started = time.monotonic()
    failures, requests, errors = run_contract(world, live_server, tmp_path)
    print(f"\ncontract run: {time.monotonic() - started:.0f}s, requests by phase {dict(requests)}")
    print(f"names not looked up: {len(loopback_only)}")
    report = "\n\n".join(
        f"{check} on {operation}: {title}\n{detail}" for (check, operation, title), detail in sorted(failures.items())
    )
    assert not errors, errors
    assert not failures, f"{len(failures)} distinct failures:\n\n{report}"
    assert requests["stateful"] > 0 and requests["coverage"] > 0 and requests["fuzzing"] > 0
