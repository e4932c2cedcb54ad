"""The API's own input fields: text that must be a JSON string, an uploaded file, a link card ("auto", null or the
card as edited), a list limit stated in the schema but enforced when the post is accepted, and an RFC 3339 time with
its zone."""

import re
from typing import Any

from django.core.validators import MaxLengthValidator
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.exceptions import ScheduledInThePast, ScheduledTooFar


class TextInputField(serializers.CharField):
    """A string the client sends. DRF's CharField would read a JSON number (or true) as its text and save "0"
    where the schema says `type: string`; this refuses anything but a string."""

    default_error_messages = {"not_a_string": "Must be text (a JSON string), not a number, true/false or a list."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class UploadField(serializers.FileField):
    """A file sent as a multipart part: binary in the schema (drf-spectacular would call it a URI), never empty."""


class LinkCardInputSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000, help_text="The page the card links to (http or https).")
    title = TextInputField(required=False, allow_blank=True, max_length=300, help_text="Missing: the page's title.")
    description = TextInputField(
        required=False, allow_blank=True, max_length=1000, help_text="Missing: the page's description."
    )

    def validate_url(self, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("Enter an http or https address.", code="invalid")
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["auto"]},
            {
                "type": "object",
                "properties": {
                    "url": {
                        "type": "string",
                        "format": "uri",
                        "maxLength": 2000,
                        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                    },
                    "title": {"type": "string", "maxLength": 300},
                    "description": {"type": "string", "maxLength": 1000},
                },
                "required": ["url"],
            },
        ],
        "nullable": True,
        "default": "auto",
        "description": '"auto" (a card from the first link), null (no card), or the card as the user edited it.',
    }
)
class LinkCardField(serializers.Field):
    """`"auto"`, null, or `{"url", "title"?, "description"?}`."""

    default_error_messages = {"invalid": 'Expected "auto", null or an object with url, title and description.'}

    def to_internal_value(self, data: Any) -> str | dict[str, str]:
        if data == "auto":
            return "auto"
        if not isinstance(data, dict):
            self.fail("invalid")
        card = LinkCardInputSerializer(data=data)
        card.is_valid(raise_exception=True)
        return dict(card.validated_data)

    def to_representation(self, value: Any) -> Any:
        return value


class StatedLimit(MaxLengthValidator):
    """A list's largest length, stated in the schema (`maxItems`) and enforced when the post is accepted, with that
    check's own error code (`too_many_parts`, `too_many_images`, `invalid_language`) and words, the same as the web
    composer's: nothing to check here."""

    def __call__(self, value: Any) -> None:
        return None


# RFC 3339 (what `format: date-time` means) allows lower-case T and Z and a leap second (:60), which Python's
# datetime cannot hold: the leap second is read as :59 of the same minute.
_LEAP_SECOND = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:)60(?=[.,]\d+|Z|[+-]\d\d|$)")


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 / RFC 3339 with its time zone (`Z` or an offset): a bare local time would be read in the server's
    zone. A leap second (`23:59:60Z`) is read as `23:59:59Z`; a time that does not exist (February 30th, hour 24,
    minute 60, an offset of a day or more) is refused, never a server error."""

    default_error_messages = {
        "naive": "Give the time zone too, e.g. 2026-11-23T18:00:00+01:00 or ...T17:00:00Z.",
        "impossible": "That date or time does not exist: check the day of the month, the hour (00-23), minutes and "
        "seconds (00-59) and the offset (less than 24 hours). E.g. 2026-11-23T18:00:00+01:00.",
    }

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str):
            value = _LEAP_SECOND.sub(r"\g<1>59", value.upper())
            try:
                parsed = parse_datetime(value)
            except (ValueError, OverflowError):
                self.fail("impossible")
            if parsed is not None and timezone.is_naive(parsed):
                self.fail("naive")
        return super().to_internal_value(value)

    def enforce_timezone(self, value: Any) -> Any:
        """A valid time whose UTC falls outside years 1-9999 (9999-12-31T23:59:59-01:00) is far out of the range a
        post can be scheduled in: said as that, not as Python's overflow."""
        try:
            return super().enforce_timezone(value)
        except serializers.ValidationError:
            raise ScheduledTooFar() if value.year > 1 else ScheduledInThePast() from None
