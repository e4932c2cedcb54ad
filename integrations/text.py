"""Text that came from another server, made fit to store and show."""

import re
from typing import Any

# NUL (which PostgreSQL's text and jsonb refuse), the other C0 controls but tab and line breaks, DEL, and lone
# surrogates (which cannot be encoded as UTF-8, so no database takes them).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean_text(value: Any) -> str:
    """`value` without the characters a database refuses or a page should never show (see `_UNSTORABLE`); "" when
    it is not a string. For every string an upstream server sends before it is stored: a record's fields, a page's
    title, an error message."""
    return _UNSTORABLE.sub("", value) if isinstance(value, str) else ""
