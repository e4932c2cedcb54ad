"""One error shape for the whole API: {"error": {"code", "message", "retry_after"?, "fields"?}}."""

import re
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
    exc = _as_api_exception(exc, context)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    _reshape(response, exc)
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in response:
        response["Retry-After"] = "60"
    return response


def _as_api_exception(exc: Exception, context: dict[str, Any]) -> Exception:
    """The app's and Django's own errors as the DRF exceptions that answer them (others as they are)."""
    if isinstance(exc, IntegrationError):
        return IntegrationAPIException(exc)
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        return RequestTooLarge()
    if isinstance(exc, exceptions.UnsupportedMediaType) and not isinstance(exc, UnsupportedMediaType):
        view, request = context.get("view"), context.get("request")
        accepted = [parser.media_type for parser in view.get_parsers()] if view is not None else []
        return UnsupportedMediaType(getattr(request, "content_type", "") or "", accepted)
    return exc


def _reshape(response: Response, exc: Exception) -> None:
    """Give DRF's answer to `exc` the API's one error shape (and `Retry-After` when the error says when)."""
    if isinstance(exc, IntegrationAPIException):
        response.data = _body(exc.detail.code, str(exc.detail), retry_after=exc.retry_after)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = _body("invalid", validation_message(detail), fields=detail)
    elif isinstance(exc, exceptions.Throttled):
        response.data = _body("throttled", str(exc.detail), retry_after=exc.wait and int(exc.wait + 0.999))
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = _body(code, str(exc.detail))


# Items of these lists are named as people count them ("Part 2, image 1"); other keys are shown as sent.
_ITEM_NAMES = {"parts": "Part", "images": "image", "langs": "language"}
_GENERIC_SUBJECT = re.compile(r"\b[Tt]his (?:field|value|list)\b")


def _first_error(detail: Any, path: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str] | None:
    """The path to the first message in DRF's error structure, and that message. Dict keys are field names (or an
    item's index); a list holds either messages or, from older DRF versions, one error dict per item."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if (found := _first_error(value, (*path, key))) is not None:
                return found
        return None
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                if (found := _first_error(item, (*path, index))) is not None:
                    return found
            else:
                return path, str(item)
        return None
    return path, str(detail)


def _labels(path: tuple[str | int, ...]) -> list[str]:
    """`("parts", 1, "images", 0, "media")` -> `["Part 2", "image 1", "media"]`; `non_field_errors` names nothing
    (the message is about the object or list that holds it)."""
    labels: list[str] = []
    for position, step in enumerate(path):
        if step == "non_field_errors":
            continue
        if isinstance(step, int) or step.isdigit():
            container = str(path[position - 1]) if position else ""
            labels[-1:] = [f"{_ITEM_NAMES.get(container, f'{container} item')} {int(step) + 1}"]
        else:
            labels.append(step)
    return labels


def validation_message(detail: dict[str, Any]) -> str:
    """One sentence for `error.message` that names where the (first) mistake is: "Part 1: text is required.",
    "Part 2, image 1: Ensure media is greater than or equal to 1.", "channel is required."; `fields` keeps the
    whole structure. DRF's "This field ..." is told with the field's name; any other message follows the place
    inside the body, and a top-level field's own sentence is kept as written (the web form's words)."""
    found = _first_error(detail)
    if found is None:
        return "Invalid input."
    path, message = found
    labels = _labels(path)
    if not labels:
        return message
    *where, subject = labels
    match = _GENERIC_SUBJECT.search(message)
    if match is not None:
        sentence = message[: match.start()] + subject + message[match.end() :]
        return f"{', '.join(where)}: {sentence}" if where else sentence
    if len([step for step in path if step != "non_field_errors"]) > 1:  # inside the body: say where
        return f"{', '.join(labels)}: {message}"
    return message  # a field's own words ("This is not a valid Bluesky handle ..."), as the web page shows them
