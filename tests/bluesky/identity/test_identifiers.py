"""`integrations.bluesky.identity.identifiers` against the atproto interop tests' syntax vectors, and every module that
reads or writes an identifier going through it."""

from pathlib import Path

import pytest

from integrations.bluesky.identity import identifiers

VECTORS = Path(__file__).parent / "vectors" / "atproto-syntax"

CHECKS = {
    "atidentifier": identifiers.is_at_identifier,
    "aturi": identifiers.is_at_uri,
    "cid": identifiers.is_cid,
    "datetime": identifiers.is_datetime,
    "did": identifiers.is_did,
    "handle": identifiers.is_handle,
    "language": identifiers.is_language,
    "nsid": identifiers.is_nsid,
    "recordkey": identifiers.is_record_key,
    "tid": identifiers.is_tid,
    "uri": identifiers.is_uri,
}


def vectors(name: str) -> list[str]:
    """The values of one vector file: every line but blank ones and `#` comments, white space kept."""
    lines = (VECTORS / name).read_text(encoding="utf-8").split("\n")
    return [line for line in lines if line and not line.startswith("#")]


def cases(expected: bool) -> list:
    suffixes = ("_syntax_valid.txt",) if expected else ("_syntax_invalid.txt", "_parse_invalid.txt")
    found = []
    for path in sorted(VECTORS.glob("*.txt")):
        if not path.name.endswith(suffixes):
            continue
        kind = path.name.split("_")[0]
        found += [pytest.param(kind, value, id=f"{path.stem}:{value[:60]!r}") for value in vectors(path.name)]
    return found


def test_every_vector_file_is_checked_and_none_is_empty():
    kinds = {path.name.split("_")[0] for path in VECTORS.glob("*.txt")}
    assert kinds == set(CHECKS)
    for path in VECTORS.glob("*.txt"):
        assert vectors(path.name), path.name


@pytest.mark.parametrize(("kind", "value"), cases(True))
def test_valid_vectors_are_accepted(kind, value):
    assert CHECKS[kind](value) is True


@pytest.mark.parametrize(("kind", "value"), cases(False))
def test_invalid_vectors_are_refused(kind, value):
    assert CHECKS[kind](value) is False


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
@pytest.mark.parametrize("value", [None, 12, b"did:plc:abc", ["a.b.c"], {"x": 1}])
def test_what_is_not_a_string_is_never_an_identifier(check, value):
    assert check(value) is False


def test_a_trailing_newline_is_not_part_of_an_identifier():
    # Python's `$` matches before a final newline: the checks must not.
    for check, value in [
        (identifiers.is_did, "did:plc:abc\n"),
        (identifiers.is_handle, "alice.test\n"),
        (identifiers.is_record_key, "self\n"),
        (identifiers.is_tid, "3jzfcijpj2z2a\n"),
        (identifiers.is_nsid, "app.bsky.feed.post\n"),
        (identifiers.is_at_uri, "at://did:plc:abc\n"),
        (identifiers.is_datetime, "1985-04-12T23:20:50Z\n"),
        (identifiers.is_language, "en\n"),
        (identifiers.is_cid, "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a\n"),
    ]:
        assert check(value) is False, value


def test_at_uri_parts():
    uri = identifiers.parse_at_uri("at://did:plc:abc/app.bsky.feed.post/3jzfcijpj2z2a")
    assert uri == identifiers.AtUri("did:plc:abc", "app.bsky.feed.post", "3jzfcijpj2z2a")
    assert str(uri) == "at://did:plc:abc/app.bsky.feed.post/3jzfcijpj2z2a"
    assert identifiers.parse_at_uri("at://alice.test") == identifiers.AtUri("alice.test")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1985-04-12T23:20:50.123Z", "1985-04-12T23:20:50.123000+00:00"),
        ("1985-04-12T23:20:50.1234567Z", "1985-04-12T23:20:50.123456+00:00"),
        ("1985-04-12T23:20:50.123-07:00", "1985-04-13T06:20:50.123000+00:00"),
        ("0985-04-12T23:20:50Z", "0985-04-12T23:20:50+00:00"),
        ("2024-02-29T12:00:00+01:00", "2024-02-29T11:00:00+00:00"),
    ],
)
def test_parse_datetime_gives_the_moment_in_utc(value, expected):
    assert identifiers.parse_datetime(value).isoformat() == expected


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:00-00:01",  # valid syntax, but year 10000 in UTC
        "9999-12-31T12:00:00Z",  # a valid datetime, too close to the end to show in every zone
        "0000-01-01T00:00:00Z",  # a valid datetime Python cannot hold
        "0001-01-01T06:00:00Z",
        "1985-02-29T00:00:00Z",  # no such day
        "1985-04-12T23:59:60Z",
        "1985-04-12T23:20:50",
        "",
        None,
    ],
)
def test_parse_datetime_refuses_what_cannot_be_shown(value):
    assert identifiers.parse_datetime(value) is None


def test_format_datetime_always_writes_a_four_digit_year_in_utc():
    from datetime import UTC, datetime, timedelta, timezone

    assert identifiers.format_datetime(datetime(999, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)) == "0999-01-02T03:04:05.678Z"
    assert identifiers.format_datetime(datetime(5, 6, 7, tzinfo=UTC)) == "0005-06-07T00:00:00.000Z"
    tokyo = timezone(timedelta(hours=9))
    assert identifiers.format_datetime(datetime(2026, 1, 1, 8, 0, tzinfo=tokyo)) == "2025-12-31T23:00:00.000Z"
    for year in (1, 9, 99, 999, 2026, 9999):
        written = identifiers.format_datetime(datetime(year, 6, 1, tzinfo=UTC))
        assert identifiers.is_datetime(written), written


# --- every other module uses these rules ------------------------------------------------------------------------
def test_no_other_module_spells_an_identifiers_syntax():
    """The four DID patterns that disagreed (validators, identity, references, richtext) and the record-key, CID,
    TID and language patterns live in `identifiers` only."""
    import re

    import integrations

    root = Path(integrations.__file__).parent
    signs = [
        re.compile(r"did:\[a-z\]"),  # a DID pattern
        re.compile(r"\[A-Za-z0-9\._:~-\]|\[a-zA-Z0-9_~\.:-\]"),  # a record-key pattern
        re.compile(r"\[a-zA-Z0-9\]\{8,"),  # a CID pattern
        re.compile(r"234567abcdefghij"),  # the TID alphabet
        re.compile(r"grandfathered"),  # the BCP 47 pattern
        re.compile(r"\(\?=\.\{1,253\}"),  # a handle pattern
    ]
    offenders = [
        f"{path.relative_to(root)}: {sign.pattern}"
        for path in root.rglob("*.py")
        if path.name != "identifiers.py" and "migrations" not in path.parts
        for sign in signs
        if sign.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "address",
    [
        "at://did:plc:abc/app.bsky.feed.post/.",
        "at://did:plc:abc/app.bsky.feed.post/..",
        "https://bsky.app/profile/alice.test/post/..",
        "https://bsky.app/profile/alice.test/post/.",
        "at://did:plc:abc:/app.bsky.feed.post/3jzfcijpj2z2a",  # a DID ending in ":"
        "at://did:plc:abc%/app.bsky.feed.post/3jzfcijpj2z2a",  # ... or in "%"
        "at://alice.test/app.bsky.feed.post/3jzfcijpj2z2a/",
        "at://did:plc:abc/app.bsky.feed.post/a b",
    ],
)
def test_a_post_address_with_a_record_key_or_did_the_spec_forbids_is_refused(address):
    from integrations.bluesky.posts import references
    from integrations.bluesky.xrpc import errors

    with pytest.raises(errors.InvalidReference):
        references.parse(address)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("at://did:plc:abc/app.bsky.feed.post/3jzfcijpj2z2a", ("did:plc:abc", "3jzfcijpj2z2a")),
        ("https://bsky.app/profile/Alice.Test/post/3jzfcijpj2z2a/", ("Alice.Test", "3jzfcijpj2z2a")),
        ("https://bsky.app/profile/did:web:example.com/post/self.", ("did:web:example.com", "self.")),
    ],
)
def test_a_post_address_the_spec_allows_is_read(address, expected):
    from integrations.bluesky.posts import references

    assert references.parse(address) == expected


def test_a_mention_whose_did_is_longer_than_the_spec_allows_stays_text():
    from integrations.bluesky.posts import richtext

    long_did = "did:plc:" + "a" * 2041  # 2,049 characters
    assert richtext.resolve_mentions(["a.test", "b.test"], {"a.test": long_did, "b.test": "did:plc:abc:"}.get) == {
        "a.test": None,
        "b.test": None,
    }
    assert richtext.resolve_mentions(["c.test"], lambda handle: "did:plc:" + "a" * 2040) == {
        "c.test": "did:plc:" + "a" * 2040
    }


@pytest.mark.parametrize("tag", ["jaja", "de-DE-1901-1901", "en-a-foo-a-bar", "EN-u-co-phonebk-U-ca-buddhist"])
def test_a_post_language_the_spec_refuses_is_refused(tag):
    from integrations.bluesky.posts import languages

    with pytest.raises(languages.InvalidLanguage):
        languages.canonical_lang(tag)


@pytest.mark.parametrize(("tag", "expected"), [("JA", "ja"), ("pt_br", "pt-BR"), ("X-fr-CH", "x-fr-CH")])
def test_a_post_language_in_another_case_is_put_in_the_conventional_one(tag, expected):
    from integrations.bluesky.posts import languages

    assert languages.canonical_lang(tag) == expected


def test_an_avatar_is_linked_for_a_cidv1_in_any_base_and_never_for_a_cidv0():
    import base64

    import libipld

    from integrations.bluesky.xrpc.client import PdsClient

    base32 = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
    _, raw = libipld.decode_multibase(base32)
    base64_form = "m" + base64.b64encode(raw).decode().rstrip("=")
    client = PdsClient("http://127.0.0.1:9")
    for link in (base32, base64_form):
        url = client._blob_url("did:plc:abc", {"ref": {"$link": link}})
        assert url.startswith("http://127.0.0.1:9/xrpc/com.atproto.sync.getBlob?"), link
    cidv0 = "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"
    assert client._blob_url("did:plc:abc", {"ref": {"$link": cidv0}}) == ""


def test_records_skyport_writes_carry_a_four_digit_year():
    from datetime import UTC, datetime

    from integrations.bluesky.posts.plans import iso_time

    assert iso_time(datetime(812, 3, 4, 5, 6, 7, tzinfo=UTC)) == "0812-03-04T05:06:07.000Z"
