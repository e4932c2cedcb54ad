"""Keyset pagination for every list of the web pages and the API: a page of rows after a cursor, in a fixed order.

No OFFSET: a page starts where the previous one ended (`WHERE (created_at, id) < (…)`, through an index), so the
400th page costs what the first does, and rows added meanwhile neither repeat a row nor skip one (they sort before
the cursor). The cursor is the last row's sort key, in URL-safe base64; it is opaque to clients, and one that does not
decode to such a key is refused (`InvalidCursor`: 400 `invalid_cursor` in the API). A cursor only ever moves within
the queryset it is applied to, which the caller has already limited to the user's own rows.
"""

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from integrations.exceptions import InvalidCursor

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 1000
CURSOR_RE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Page[T]:
    items: list[T]
    cursor: str | None  # pass back for the next page; None on the last one


def page(
    queryset: QuerySet[Any], ordering: Sequence[str], cursor: str | None = None, limit: int = DEFAULT_LIMIT
) -> Page[Any]:
    """The rows of `queryset` after `cursor` in `ordering` (field names or names of the queryset's annotations, "-"
    for descending; the last one must be unique, e.g. "-pk"), at most `limit` of them. Raises InvalidCursor for a
    cursor that is not one of this list's. Ordering fields must not be null (a NULL has no place in the key)."""
    limit = max(1, min(MAX_LIMIT, int(limit)))
    keys = [_Key(queryset, name) for name in ordering]
    queryset = queryset.order_by(*ordering)
    if cursor:
        queryset = queryset.filter(_after(keys, _decode(keys, cursor)))
    rows = list(queryset[: limit + 1])
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items=items, cursor=_encode([key.value_of(items[-1]) for key in keys]) if more else None)


def check_limit(value: Any, default: int = DEFAULT_LIMIT) -> int:
    """A page size from a query string (the web pages): the default when missing or not a number, else within 1 and
    MAX_LIMIT."""
    try:
        return max(1, min(MAX_LIMIT, int(value)))
    except (TypeError, ValueError):
        return default


class _Key:
    """One field of a list's order (a model field, or an annotation of the queryset such as an expression an index
    serves): its name, direction and how its values travel in a cursor."""

    def __init__(self, queryset: QuerySet[Any], name: str) -> None:
        self.descending = name.startswith("-")
        self.name = name.lstrip("-")
        meta = queryset.model._meta
        annotation = queryset.query.annotations.get(self.name)
        if annotation is not None:
            field, self.attname = annotation.output_field, self.name
        else:
            field = meta.pk if self.name == "pk" else meta.get_field(self.name)
            self.attname = field.attname
        self.kind = (
            datetime
            if isinstance(field, models.DateTimeField)
            else int
            if isinstance(field, models.IntegerField | models.AutoField | models.ForeignKey)
            else str
        )

    def value_of(self, row: Any) -> Any:
        value = getattr(row, self.attname)
        if value is None:
            raise ValueError(f"{self.name} is null: it cannot order a keyset page")
        return value.isoformat() if isinstance(value, datetime) else value

    def parse(self, value: Any) -> Any:
        """The value a cursor carries for this key, checked; InvalidCursor when it is not one."""
        if self.kind is datetime:
            when = parse_datetime(value) if isinstance(value, str) else None
            if when is None or when.tzinfo is None:
                raise InvalidCursor()
            return when
        if self.kind is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidCursor()
            return value
        if not isinstance(value, str):
            raise InvalidCursor()
        return value


def _after(keys: list[_Key], values: list[Any]) -> Q:
    """The rows that sort after `values`: (a, b) < (x, y) written so that an index on (a, b) is entered at the
    cursor (`a <= x` first, then the exact tie-break), not walked from its start."""
    first = keys[0]
    bound = Q(**{f"{first.name}__{'lte' if first.descending else 'gte'}": values[0]})
    after = Q()
    for index, key in enumerate(keys):
        step = Q(**{f"{key.name}__{'lt' if key.descending else 'gt'}": values[index]})
        for earlier, value in zip(keys[:index], values[:index], strict=True):
            step &= Q(**{earlier.name: value})
        after |= step
    return bound & after


def _encode(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(keys: list[_Key], cursor: str) -> list[Any]:
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH or not CURSOR_RE.fullmatch(cursor):
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):  # ValueError covers JSON and UTF-8 decoding errors
        raise InvalidCursor() from None
    if not isinstance(values, list) or len(values) != len(keys):
        raise InvalidCursor()
    return [key.parse(value) for key, value in zip(keys, values, strict=True)]
