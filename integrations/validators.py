"""Validation of what users send that is not any provider's business: ids and whole numbers.

(A PDS URL is checked by `integrations.bluesky.xrpc.servers`, a Bluesky sign-in identifier by
`integrations.bluesky.identity.identifiers`.)
"""

import re

# Ids in URLs, forms and API bodies: the largest a 64-bit primary key holds (SQLite and PostgreSQL alike). A larger
# number reaches no row, and some databases refuse to even compare with it.
MAX_DATABASE_ID = 2**63 - 1
_ASCII_NUMBER_RE = re.compile(r"[0-9]{1,19}")


def parse_number(value: object, *, maximum: int = MAX_DATABASE_ID) -> int | None:
    """A whole number written in ASCII digits, from 0 to `maximum`; None for anything else (other scripts' digits,
    superscripts, signs, a number too large)."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not _ASCII_NUMBER_RE.fullmatch(text):
        return None
    number = int(text)
    return number if number <= maximum else None


def parse_id(value: object) -> int | None:
    """A database id as a user may send it ("17"): a positive whole number a 64-bit key can hold, else None."""
    number = parse_number(value)
    return number if number else None
