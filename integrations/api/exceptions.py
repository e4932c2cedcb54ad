"""One error shape for the whole API: {"error": {"code", "message", "retry_after"?, "fields"?}}."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from integrations.adapter import describe
from integrations.exceptions import IntegrationError


class IntegrationAPIException(exceptions.APIException):
    """An IntegrationError in API form: status, code and message come from the adapter's message table."""

    def __init__(self, error: IntegrationError) -> None:
        described = describe(error)
        self.status_code = described.http_status
        self.retry_after = described.retry_after
        super().__init__(detail=described.message, code=described.code)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class UnsupportedMediaType(exceptions.UnsupportedMediaType):
    """A body in an encoding the operation does not read, answered with the encodings it does read."""

    def __init__(self, content_type: str, accepted: list[str]) -> None:
        media_type = content_type.split(";", 1)[0].strip()
        accepted = accepted or ["application/json"]
        sent = f'as "{media_type}"' if media_type else "without a Content-Type"
        super().__init__(
            media_type,
            detail=f"This operation reads only {' or '.join(accepted)} bodies; this one was sent {sent}. "
            f"Send it with Content-Type: {accepted[0]}.",
        )


def _body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, reshaped; BlueskyErrors become their mapped status and code."""
    if isinstance(exc, IntegrationError):
        exc = IntegrationAPIException(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        exc = RequestTooLarge()
    elif isinstance(exc, exceptions.UnsupportedMediaType) and not isinstance(exc, UnsupportedMediaType):
        view, request = context.get("view"), context.get("request")
        accepted = [parser.media_type for parser in view.get_parsers()] if view is not None else []
        exc = UnsupportedMediaType(getattr(request, "content_type", "") or "", accepted)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, IntegrationAPIException):
        response.data = _body(exc.detail.code, str(exc.detail), retry_after=exc.retry_after)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        first = next(iter(detail.values()), ["Invalid input."])
        message = str(first[0]) if isinstance(first, list) and first else str(first)
        response.data = _body("invalid", message, fields=detail)
    elif isinstance(exc, exceptions.Throttled):
        response.data = _body("throttled", str(exc.detail), retry_after=exc.wait and int(exc.wait + 0.999))
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = _body(code, str(exc.detail))
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in response:
        response["Retry-After"] = "60"
    return response
