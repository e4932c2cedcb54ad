"""The syntax of atproto's identifiers, in one place: every other module checks DIDs, handles, NSIDs, AT-URIs,
record keys, TIDs, CIDs, datetimes and language tags here.

Each rule is the one the atproto specs define (https://atproto.com/specs/did, /handle, /nsid, /at-uri-scheme,
/record-key, /tid, /lexicon#string-formats, /data-model), as `@atproto/syntax` implements it, and is tested against
the syntax vectors of `bluesky-social/atproto-interop-tests` (kept in tests/bluesky/identity/vectors/atproto-syntax/).

Syntax only: nothing here resolves anything or talks to a server. Every predicate takes any value and answers False
for what is not a string, so upstream data can be checked without a guard first.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

# --- DID (https://atproto.com/specs/did) ------------------------------------------------------------------------
MAX_DID_LENGTH = 2048
# "did:", a lower-case method, then ASCII letters, digits and ._:%- ending in neither ":" nor "%".
_DID = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]", re.ASCII)


def is_did(value: Any) -> bool:
    """Whether `value` is a DID in atproto's syntax (any method; at most 2,048 characters)."""
    return isinstance(value, str) and len(value) <= MAX_DID_LENGTH and _DID.fullmatch(value) is not None


# --- handle (https://atproto.com/specs/handle) -------------------------------------------------------------------
MAX_HANDLE_LENGTH = 253
# Domain labels of ASCII letters, digits and hyphens (1-63 characters, no hyphen at either end), at least two of
# them, the last (the TLD) starting with a letter. Case-insensitive: handles compare lower-cased.
_HANDLE = re.compile(
    r"([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?", re.ASCII
)


def is_handle(value: Any) -> bool:
    """Whether `value` is a handle in atproto's syntax (either case; at most 253 characters)."""
    return isinstance(value, str) and len(value) <= MAX_HANDLE_LENGTH and _HANDLE.fullmatch(value) is not None


def normalize_handle(value: str) -> str:
    """A handle as it is compared and stored: lower-cased (the spec's normalisation; nothing else changes)."""
    return value.lower()


def is_at_identifier(value: Any) -> bool:
    """Whether `value` names an account as an AT-URI's authority does: a DID, or a handle."""
    if not isinstance(value, str):
        return False
    return is_did(value) if value.startswith("did:") else is_handle(value)


_DID_WEB_HOST = re.compile(r"[a-z0-9.-]+(%3a[0-9]{1,5})?", re.ASCII)


def did_web_host(did: str) -> str | None:
    """The host (with `:port` when it names one) a `did:web` DID stands for, or None when it is not a did:web DID
    atproto supports (a host name only, no path: https://atproto.com/specs/did#blessed-did-methods)."""
    if not did.startswith("did:web:") or not is_did(did):
        return None
    host = did.removeprefix("did:web:").lower()
    return host.replace("%3a", ":") if _DID_WEB_HOST.fullmatch(host) else None


def normalize_identifier(value: str) -> str:
    """A Bluesky sign-in identifier as the PDS expects it: a handle (lower-cased, without a leading @), an email
    address or a DID. Raises ValidationError saying what is wrong."""
    value = (value or "").strip()
    bad_handle = ValidationError(
        _("This is not a valid Bluesky handle: use the full handle, e.g. alice.bsky.social."), code="invalid_handle"
    )
    if value.startswith("@"):
        value = value[1:].strip()
        if value.startswith("@"):
            raise bad_handle
    if not value:
        raise ValidationError(_("Enter your Bluesky handle (e.g. alice.bsky.social) or email."), code="required")
    if value.startswith("did:"):
        if not is_did(value):
            raise ValidationError(_("This DID is not valid (e.g. did:plc:abc123…)."), code="invalid_did")
        return value
    if "@" in value:
        try:
            validate_email(value)
        except ValidationError as exc:
            raise ValidationError(_("This email address is not valid."), code="invalid_email") from exc
        return value
    if not is_handle(value):
        raise bad_handle
    return normalize_handle(value)


# --- NSID (https://atproto.com/specs/nsid) -----------------------------------------------------------------------
MAX_NSID_LENGTH = 253 + 1 + 63
# A reversed domain (its first label starting with a letter) and a name of letters and digits (no leading digit).
_NSID = re.compile(
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+"
    r"\.[a-zA-Z][a-zA-Z0-9]{0,62}",
    re.ASCII,
)


def is_nsid(value: Any) -> bool:
    """Whether `value` is a Namespaced Identifier (a collection or method name such as `app.bsky.feed.post`)."""
    return isinstance(value, str) and len(value) <= MAX_NSID_LENGTH and _NSID.fullmatch(value) is not None


# --- record key (https://atproto.com/specs/record-key) -----------------------------------------------------------
MAX_RECORD_KEY_LENGTH = 512
_RECORD_KEY = re.compile(r"[a-zA-Z0-9_~.:-]{1,512}", re.ASCII)


def is_record_key(value: Any) -> bool:
    """Whether `value` is a record key: 1-512 of `A-Za-z0-9 . - _ : ~`, and neither `.` nor `..`."""
    return isinstance(value, str) and value not in (".", "..") and _RECORD_KEY.fullmatch(value) is not None


# --- TID (https://atproto.com/specs/tid) -------------------------------------------------------------------------
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable
_TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}", re.ASCII)


def is_tid(value: Any) -> bool:
    """Whether `value` is a TID: 13 characters of base32-sortable, the first one without the high bit set."""
    return isinstance(value, str) and _TID.fullmatch(value) is not None


# --- CID (https://atproto.com/specs/data-model#link-and-cid-formats) ----------------------------------------------
# A CID's string form is a multibase string: any base (base32 `b…`, base58btc `z…`, base64 `m…` with `+` and `/`,
# base64url `u…` with `-` and `_`, base16 `f…`, …), 8 to 256 characters. CIDv0 (a bare base58btc multihash, `Qm…`,
# 46 characters) is not supported by atproto: only CIDv1 (the interop vectors refuse it, as the Go implementation
# does). Syntax only: whether the bytes make a CID is for a decoder to say.
_CID = re.compile(r"[a-zA-Z0-9+/=_-]{8,256}", re.ASCII)
_CID_V0 = re.compile(r"Qm[1-9A-HJ-NP-Za-km-z]{44}", re.ASCII)


def is_cid(value: Any) -> bool:
    """Whether `value` is a CID in string form atproto accepts (CIDv1 in any multibase; never CIDv0)."""
    return isinstance(value, str) and _CID.fullmatch(value) is not None and _CID_V0.fullmatch(value) is None


# --- datetime (https://atproto.com/specs/lexicon#datetime) -------------------------------------------------------
MAX_DATETIME_LENGTH = 64
# RFC 3339 and ISO 8601 at once: a four-digit year, upper-case T, seconds always, and a zone: Z or ±hh:mm.
_DATETIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[012])-(?P<day>[0-2][0-9]|3[01])"
    r"T(?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9]):(?P<second>[0-5][0-9]|60)(?P<fraction>\.[0-9]+)?"
    r"(?P<zone>Z|(?P<sign>[+-])(?P<zone_hour>[01][0-9]|2[0-3]):(?P<zone_minute>[0-5][0-9]))",
    re.ASCII,
)
_CYCLE = 400  # the Gregorian calendar repeats every 400 years: how Python's datetime checks years 0 and 9999


def _datetime_in_utc(value: Any) -> tuple[datetime, int] | None:
    """The moment `value` names in UTC, shifted by a multiple of 400 years into what Python's datetime holds, and
    its real year (0-9999); None when `value` is not an atproto datetime."""
    if not isinstance(value, str) or len(value) > MAX_DATETIME_LENGTH or value.endswith("-00:00"):
        return None
    match = _DATETIME.fullmatch(value)
    if match is None:
        return None
    year = int(match["year"])
    shift = _CYCLE if year < _CYCLE else -_CYCLE if year > 9999 - _CYCLE else 0
    try:  # refuses a day the month does not have, and second 60 (a leap second is not a time a Date can hold)
        moment = datetime(
            year + shift,
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if match["sign"]:
        offset = timedelta(hours=int(match["zone_hour"]), minutes=int(match["zone_minute"]))
        moment -= offset if match["sign"] == "+" else -offset
    if not 0 <= moment.year - shift <= 9999:  # it must still have a four-digit year in UTC
        return None
    fraction = match["fraction"] or ""
    return moment.replace(microsecond=int((fraction[1:] + "000000")[:6]) if fraction else 0), moment.year - shift


def is_datetime(value: Any) -> bool:
    """Whether `value` is a datetime as the Lexicon `datetime` format wants it: RFC 3339 with a four-digit year,
    seconds and a zone (`Z` or `±hh:mm`, never `-00:00`), a real calendar day, and a year from 0000 to 9999 once
    it is in UTC."""
    return _datetime_in_utc(value) is not None


# Upstream times are shown in any time zone: keep a day's margin from the ends of what a datetime can hold.
_SHOWABLE = (datetime.min.replace(tzinfo=UTC) + timedelta(days=1), datetime.max.replace(tzinfo=UTC) - timedelta(days=1))


def parse_datetime(value: Any) -> datetime | None:
    """The moment an atproto datetime names, as an aware datetime in UTC (microseconds at most); None when `value`
    is not one, or when it is too close to year 0 or year 9999 to be shown in every time zone (such a time can be
    valid syntax, yet it is no time a post was written)."""
    found = _datetime_in_utc(value)
    if found is None or found[1] == 0:
        return None
    moment = found[0].replace(year=found[1])  # a 400-year shift keeps February 29th
    return moment if _SHOWABLE[0] <= moment <= _SHOWABLE[1] else None


def format_datetime(moment: datetime) -> str:
    """A datetime as Skyport writes it: UTC, a four-digit year, milliseconds, `Z` (`2026-01-02T03:04:05.678Z`).
    `moment` must be aware."""
    moment = moment.astimezone(UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
        f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


# --- language tag (https://atproto.com/specs/lexicon#language) ---------------------------------------------------
# RFC 5646 §2.1 well-formedness (the regex of @atproto/syntax language.ts).
_BCP47 = re.compile(
    r"(?P<grandfathered>(en-GB-oed|i-ami|i-bnn|i-default|i-enochian|i-hak|i-klingon|i-lux|i-mingo|i-navajo|i-pwn"
    r"|i-tao|i-tay|i-tsu|sgn-BE-FR|sgn-BE-NL|sgn-CH-DE)|(art-lojban|cel-gaulish|no-bok|no-nyn|zh-guoyu|zh-hakka"
    r"|zh-min|zh-min-nan|zh-xiang))|((?P<language>([A-Za-z]{2,3}(-(?P<extlang>[A-Za-z]{3}(-[A-Za-z]{3}){0,2}))?)"
    r"|[A-Za-z]{4}|[A-Za-z]{5,8})(-(?P<script>[A-Za-z]{4}))?(-(?P<region>[A-Za-z]{2}|[0-9]{3}))?"
    r"(-(?P<variant>[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-(?P<extension>[0-9A-WY-Za-wy-z](-[A-Za-z0-9]{2,8})+))*"
    r"(-(?P<privateUseA>[xX](-[A-Za-z0-9]{1,8})+))?)|(?P<privateUseB>[xX](-[A-Za-z0-9]{1,8})+)",
    re.ASCII,
)
_VARIANT = re.compile(r"[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}", re.ASCII)
_SINGLETON = re.compile(r"[0-9A-WYZa-wyz]", re.ASCII)
_EXTENSION_SUBTAG = re.compile(r"[A-Za-z0-9]{2,8}", re.ASCII)


def is_well_formed_language(value: Any) -> bool:
    """Whether `value` follows RFC 5646's grammar (§2.1) in any letter case: what a user's input must be before
    `integrations.bluesky.posts.languages.canonical_lang` puts it in the conventional case."""
    return isinstance(value, str) and _BCP47.fullmatch(value) is not None


def _after_language_script_region(subtags: list[str]) -> int:
    """The index of the first subtag after the primary language, its extended language subtags, script and region."""
    index = 1
    if len(subtags[0]) in (2, 3):  # up to three extended language subtags
        while index < min(len(subtags), 4) and len(subtags[index]) == 3 and subtags[index].isalpha():
            index += 1
    if index < len(subtags) and len(subtags[index]) == 4 and subtags[index].isalpha():  # script
        index += 1
    if index < len(subtags) and re.fullmatch(r"[A-Za-z]{2}|[0-9]{3}", subtags[index], re.ASCII):  # region
        index += 1
    return index


def _repeats_variant_or_singleton(subtags: list[str]) -> bool:
    """RFC 5646 §4.1 / §2.2.9: a variant, or an extension's singleton, may appear only once (any case)."""
    index = _after_language_script_region(subtags)
    seen: set[str] = set()
    while index < len(subtags) and _VARIANT.fullmatch(subtags[index]):
        if subtags[index].lower() in seen:
            return True
        seen.add(subtags[index].lower())
        index += 1
    seen = set()
    while index < len(subtags) and _SINGLETON.fullmatch(subtags[index]):
        if subtags[index].lower() in seen:
            return True
        seen.add(subtags[index].lower())
        index += 1
        while index < len(subtags) and _EXTENSION_SUBTAG.fullmatch(subtags[index]):
            index += 1
    return False


def is_language(value: Any) -> bool:
    """Whether `value` is a language tag atproto accepts: well-formed BCP 47, the primary language a lower-case
    two- or three-letter code, no variant or extension singleton repeated (`parseLanguageString` upstream)."""
    if not isinstance(value, str):
        return False
    match = _BCP47.fullmatch(value)
    if match is None:
        return False
    if match["grandfathered"] or match["privateUseB"]:
        return True
    if re.fullmatch(r"[a-z]{2,3}", value.split("-")[0], re.ASCII) is None:
        return False
    return not _repeats_variant_or_singleton(value.split("-"))


# --- AT-URI (https://atproto.com/specs/at-uri-scheme, the restricted syntax Lexicon's `at-uri` uses) ----------------
MAX_AT_URI_LENGTH = 8 * 1024
_AT_URI = re.compile(r"at://(?P<authority>[^/?#\s]+)(?:/(?P<collection>[^/?#\s]+)(?:/(?P<rkey>[^/?#\s]+))?)?", re.ASCII)


@dataclass(frozen=True)
class AtUri:
    """The parts of an AT-URI: `at://<authority>[/<collection>[/<rkey>]]`."""

    authority: str  # a DID or a handle
    collection: str | None = None
    rkey: str | None = None

    def __str__(self) -> str:
        return "/".join(part for part in (f"at://{self.authority}", self.collection, self.rkey) if part)


def parse_at_uri(value: Any) -> AtUri | None:
    """The parts of an AT-URI in the restricted syntax (`at://` + DID or handle, then optionally an NSID and a
    record key; no query, fragment or trailing slash; at most 8 KB), or None when `value` is not one."""
    if not isinstance(value, str) or len(value) > MAX_AT_URI_LENGTH:
        return None
    match = _AT_URI.fullmatch(value)
    if match is None or not is_at_identifier(match["authority"]):
        return None
    if match["collection"] is not None and not is_nsid(match["collection"]):
        return None
    if match["rkey"] is not None and not is_record_key(match["rkey"]):
        return None
    return AtUri(match["authority"], match["collection"], match["rkey"])


def is_at_uri(value: Any) -> bool:
    """Whether `value` is an AT-URI in the restricted syntax (see `parse_at_uri`)."""
    return parse_at_uri(value) is not None


# --- URI (https://atproto.com/specs/lexicon#uri) -----------------------------------------------------------------
MAX_URI_LENGTH = 8 * 1024
# RFC 3986: a scheme (a letter, then letters, digits, `+`, `-`, `.`), `:`, then printable ASCII without spaces.
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[!-~]+", re.ASCII)


def is_uri(value: Any) -> bool:
    """Whether `value` is a URI as Lexicon's `uri` format accepts it: a scheme, `:`, something after it, no white
    space, at most 8 KB."""
    return isinstance(value, str) and len(value) <= MAX_URI_LENGTH and _URI.fullmatch(value) is not None
