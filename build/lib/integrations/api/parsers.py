"""Request parsers that answer every malformed body in the API's error shape instead of a server error."""

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from integrations.api.exceptions import RequestTooLarge


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing bodies over `DATA_UPLOAD_MAX_MEMORY_SIZE` (413) and nesting too deep to parse
    (400) before either can become a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                raise RequestTooLarge()
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
