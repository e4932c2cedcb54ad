"""What every view of the API shares: the base view (authentication, parsers, renderers and the error shape, whatever
the host project's `REST_FRAMEWORK` says), one keyset page of a list, and the words the schema documents errors
with."""

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import pagination
from integrations.api.exceptions import exception_handler
from integrations.api.parsers import SafeJSONParser
from integrations.api.serializers import ErrorSerializer, PageQuerySerializer


def errors(described: dict[int, str]) -> dict[int, OpenApiResponse]:
    """An operation's error responses (all in the `Error` shape), each status with what gives it there: only those
    its code path can answer."""
    return {status: OpenApiResponse(ErrorSerializer, description=text) for status, text in described.items()}


# The causes several operations share, as documented with each status.
NOT_SIGNED_IN = "No valid token (`Authorization: Token <key>`; a user gets one at /app/api-token) and no session."
NO_CSRF = "A call signed in with the session cookie (not a token) without the CSRF token."
NO_CHANNEL = "Not one of your channels."
NO_POST = "Not one of your posts (or it was deleted meanwhile: `post_gone`)."
PAGE_QUERY = "`limit` out of range (`invalid`) or a `cursor` this list did not give (`invalid_cursor`)."
ACCOUNT_REFUSED = "The PDS refuses the account: `account_deactivated`, `account_suspended`."
NO_SESSION = (
    "The channel has no usable session (`no_session`, `session_expired`, `session_unreadable`, `account_moved`): "
    "reconnect it."
)
PDS = {
    429: "The PDS limits this account (`rate_limited`): try again after `Retry-After`.",
    502: "The PDS answered wrongly (`pds_error`, `invalid_response`, `pds_redirect`, `account_mismatch`) or is not at "
    "a public address (`address_refused`). Nothing was changed.",
    503: "The PDS could not be reached or did not answer in time (`pds_unreachable`, `pds_timeout`, "
    "`temporary_error`). Nothing was changed.",
}
UNREADABLE_BODY = (
    "A body in an encoding this operation does not read (`unsupported_media_type`): the message names the one to send."
)
POST_CONTENT = (
    "The input (`invalid`, `parse_error`) or what it asks for: `empty_post`, `too_many_parts`, `post_too_long`, "
    "`too_many_images`, `media_not_found`, `alt_text_required`, `alt_text_too_long`, `invalid_language`, "
    "`invalid_text`, `invalid_reference` (`reply_to` or `quote` names no post), `scheduled_in_the_past`, "
    "`scheduled_too_far`; `request_rejected` when the PDS refuses looking up `reply_to` or `quote`."
)
PAGES_DESCRIPTION = (
    "A page at a time (`limit`, default 25, at most 100): pass the answer's `cursor` back as `?cursor=` for the next "
    "page; it is null on the last one. A cursor that is not one this list gave is refused (400 `invalid_cursor`)."
)


def page_of(queryset: QuerySet[Any], query_params: Any, query_serializer: type = PageQuerySerializer) -> Any:
    """One keyset page of `queryset` (in its model's order) for the request's `cursor` and `limit`."""
    query = query_serializer(data=query_params)
    query.is_valid(raise_exception=True)
    return pagination.page(
        queryset,
        queryset.model._meta.ordering,
        query.validated_data.get("cursor"),
        query.validated_data.get("limit") or pagination.DEFAULT_LIMIT,
    )


class IntegrationsAPIView(APIView):
    """What every API view of the app uses, whatever the host project's `REST_FRAMEWORK` says (or doesn't)."""

    # Token first: an unauthenticated call answers 401 with `WWW-Authenticate: Token`, as the schema says.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    throttle_classes = []
    schema = AutoSchema()

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return exception_handler
