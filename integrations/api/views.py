"""REST API for channels. Thin: every action calls `integrations.bluesky.services`."""

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import pagination
from integrations.api.exceptions import exception_handler
from integrations.api.parsers import SafeJSONParser
from integrations.api.schema import documented
from integrations.api.serializers import (
    ChannelPageSerializer,
    ChannelSerializer,
    ConnectBlueskySerializer,
    ErrorSerializer,
    EventPageSerializer,
    EventsQuerySerializer,
    FeedPageSerializer,
    FeedQuerySerializer,
    MediaSerializer,
    MediaUploadSerializer,
    PageQuerySerializer,
    PostInputSerializer,
    PostPageSerializer,
    PostSerializer,
    PostUpdateSerializer,
)
from integrations.bluesky import services
from integrations.bluesky.posts import richtext
from integrations.exceptions import PostGone, PostNotScheduled
from integrations.http import client_ip
from integrations.models import Channel, Post


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


@extend_schema_view(
    list=documented(
        summary="List your channels",
        description=PAGES_DESCRIPTION,
        parameters=[PageQuerySerializer],
        responses={200: ChannelPageSerializer, **errors({400: PAGE_QUERY, 401: NOT_SIGNED_IN})},
    ),
    retrieve=documented(
        summary="One of your channels",
        responses={200: ChannelSerializer, **errors({401: NOT_SIGNED_IN, 404: NO_CHANNEL})},
    ),
    destroy=documented(
        summary="Disconnect a channel",
        description="Signs the session out on the PDS where it answers and removes the stored tokens. The channel "
        "stays listed with health `disconnected` until it is reconnected. A PDS that does not answer does not stop "
        "it: the tokens are removed here all the same.",
        responses={204: None, **errors({401: NOT_SIGNED_IN, 403: NO_CSRF, 404: NO_CHANNEL})},
    ),
)
@method_decorator(sensitive_post_parameters("app_password"), name="dispatch")
class ChannelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
    IntegrationsAPIView,
):
    """A user's channels; another user's channel is a 404."""

    serializer_class = ChannelSerializer
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Channel]:
        queryset = Channel.objects.filter(user=self.request.user).order_by("handle", "pk")
        if self.action in ("list", "retrieve", "events"):  # tokens are never shown: don't decrypt them
            queryset = queryset.without_tokens()
        return queryset

    def list(self, request: Request) -> Response:
        return Response(ChannelPageSerializer(page_of(self.get_queryset(), request.query_params)).data)

    def perform_destroy(self, instance: Channel) -> None:
        services.disconnect(instance)

    @documented(
        summary="Connect a Bluesky account",
        request=ConnectBlueskySerializer,
        responses={
            201: ChannelSerializer,
            **errors(
                {
                    400: "The input (`invalid`, `parse_error`), or Bluesky did not accept it: `invalid_credentials`, "
                    "`main_password_refused`, `auth_factor_required`, `hosted_elsewhere`, `request_rejected`.",
                    401: NOT_SIGNED_IN,
                    403: "`integration_disabled` (switched off by the administrator), `account_deactivated`, "
                    f"`account_suspended`. {NO_CSRF}",
                    409: "`account_moved`: the account lives on another server now.",
                    413: "The body is too large (`request_too_large`).",
                    415: UNREADABLE_BODY,
                    429: "Too many connect attempts (`throttled`, this site's limit) or the PDS limits sign-ins "
                    "(`rate_limited`): try again after `Retry-After`.",
                    502: PDS[502],
                    503: f"{PDS[503]} Or the Service URL configured here is invalid (`service_misconfigured`).",
                }
            ),
        },
    )
    @method_decorator(sensitive_variables())  # the serializer's repr holds the app password
    @action(detail=False, methods=["post"], url_path="bluesky", url_name="connect-bluesky")
    def connect_bluesky(self, request: Request) -> Response:
        serializer = ConnectBlueskySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = services.connect(
            request.user,
            serializer.validated_data["identifier"],
            serializer.validated_data["app_password"],
            ip=client_ip(request.META),
        )
        return Response(ChannelSerializer(channel).data, status=status.HTTP_201_CREATED)

    @documented(
        summary="Refresh a channel's session now",
        request=None,
        responses={
            200: ChannelSerializer,
            **errors(
                {
                    401: NOT_SIGNED_IN,
                    403: f"{ACCOUNT_REFUSED} {NO_CSRF}",
                    404: NO_CHANNEL,
                    409: NO_SESSION,
                    **PDS,
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        channel = self.get_object()
        services.refresh_channel(channel)
        return Response(ChannelSerializer(channel).data)

    @documented(
        summary="A channel's event log (newest first)",
        description="The first page holds as many events as the channel's page shows (`INTEGRATIONS_EVENTS_SHOWN`); "
        "older ones follow with `cursor`. Events older than `INTEGRATIONS_EVENTS_RETENTION_DAYS` are removed.",
        parameters=[EventsQuerySerializer],
        responses={200: EventPageSerializer, **errors({400: PAGE_QUERY, 401: NOT_SIGNED_IN, 404: NO_CHANNEL})},
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str | None = None) -> Response:
        channel = self.get_object()
        query = EventsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = services.events_page(channel, query.validated_data.get("cursor"), query.validated_data.get("limit"))
        return Response(EventPageSerializer(page).data)

    @documented(
        summary="The account's recent posts (newest first)",
        description="Read from the account's own repository (`com.atproto.repo.listRecords`), so posts written "
        "elsewhere are listed too; `published_by_skyport` marks the ones published here. Pass `cursor` back for "
        "older posts. A channel without a session is refused (409).",
        parameters=[FeedQuerySerializer],
        responses={
            200: FeedPageSerializer,
            **errors(
                {
                    400: f"{PAGE_QUERY[:-1]}, or the PDS refused the call (`request_rejected`).",
                    401: NOT_SIGNED_IN,
                    403: ACCOUNT_REFUSED,
                    404: NO_CHANNEL,
                    409: NO_SESSION,
                    **PDS,
                }
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def posts(self, request: Request, pk: str | None = None) -> Response:
        channel = self.get_object()  # another user's channel is a 404 whatever the query says
        query = FeedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = services.channel_feed(channel, query.validated_data.get("cursor"), query.validated_data["limit"])
        return Response(FeedPageSerializer(page).data)

    @documented(
        summary="Remove a disconnected channel",
        description="Deletes a channel and its history, as the web page's Remove does. A channel that still holds a "
        "session is refused with `channel_connected` (409): disconnect it first.",
        request=None,
        responses={
            204: None,
            **errors(
                {
                    401: NOT_SIGNED_IN,
                    403: NO_CSRF,
                    404: NO_CHANNEL,
                    409: "The channel still holds a session (`channel_connected`): disconnect it first.",
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def remove(self, request: Request, pk: str | None = None) -> Response:
        services.remove(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    create=documented(
        summary="Upload an image for a post",
        request={"multipart/form-data": MediaUploadSerializer},
        responses={
            201: MediaSerializer,
            **errors(
                {
                    400: "No file (`invalid`), or an image that cannot be posted: `unsupported_image`, "
                    "`image_too_large`, `animated_image`.",
                    401: NOT_SIGNED_IN,
                    403: NO_CSRF,
                    413: "The body is too large (`request_too_large`), or your stored images would pass your quota "
                    "(`storage_full`).",
                    415: UNREADABLE_BODY,
                    429: "Too many uploads this hour (`too_many_uploads`): try again after `Retry-After`.",
                }
            ),
        },
    ),
)
class MediaViewSet(viewsets.GenericViewSet, IntegrationsAPIView):
    """Images a user uploads before attaching them to a post (prepared on arrival: metadata removed, limits met)."""

    serializer_class = MediaSerializer
    parser_classes = [MultiPartParser]  # a file travels as multipart only, as the schema says (else 415)

    def create(self, request: Request) -> Response:
        upload = MediaUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        media = services.store_media(request.user, upload.validated_data["file"])
        return Response(MediaSerializer(media).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=documented(
        summary="Your posts, newest first",
        description=PAGES_DESCRIPTION,
        parameters=[PageQuerySerializer],
        responses={200: PostPageSerializer, **errors({400: PAGE_QUERY, 401: NOT_SIGNED_IN})},
    ),
    retrieve=documented(
        summary="One of your posts", responses={200: PostSerializer, **errors({401: NOT_SIGNED_IN, 404: NO_POST})}
    ),
    create=documented(
        summary="Publish a post (or a thread), now or at a scheduled time",
        description="The post's records are planned when it is accepted and published once: a retry never posts "
        "twice. 201 with status `published`, or `waiting` (a temporary fault; it is retried in the background) or "
        "`failed` with the reason. With `scheduled_at`, 201 with status `scheduled`: the background worker publishes "
        "it at that time (a time already past is refused with `scheduled_in_the_past`).",
        request=PostInputSerializer,
        responses={
            201: PostSerializer,
            **errors(
                {
                    400: f"{POST_CONTENT} A `channel` that is not yours is `invalid`.",
                    401: NOT_SIGNED_IN,
                    403: f"{ACCOUNT_REFUSED} (while `reply_to` or `quote` is looked up) {NO_CSRF}",
                    404: "The post was deleted while it was being published (`post_gone`).",
                    409: f"The channel cannot publish (`channel_not_ready`). {NO_SESSION}",
                    413: "The body is too large (`request_too_large`).",
                    415: UNREADABLE_BODY,
                    429: "Too many posts lately (`posts_throttled`), too many scheduled (`too_many_scheduled`), or "
                    "the PDS limits the account while `reply_to` or `quote` is looked up (`rate_limited`): try "
                    "again after `Retry-After`.",
                    502: f"{PDS[502]} (while `reply_to` or `quote` is looked up)",
                    503: f"{PDS[503]} (while `reply_to` or `quote` is looked up)",
                }
            ),
        },
    ),
    destroy=documented(
        summary="Delete a post",
        description="A published post's records are deleted from Bluesky first; a scheduled one is just cancelled.",
        responses={
            204: None,
            **errors(
                {
                    400: "The PDS refused deleting a record (`request_rejected`).",
                    401: NOT_SIGNED_IN,
                    403: f"{ACCOUNT_REFUSED} {NO_CSRF}",
                    404: NO_POST,
                    409: "An attempt to publish it still runs (`post_deleting`: it deletes the post when it ends). "
                    f"{NO_SESSION}",
                    **PDS,
                }
            ),
        },
    ),
    partial_update=documented(
        summary="Edit or reschedule a scheduled post",
        description="Only while it is `scheduled` (it has not started publishing; else `post_not_scheduled`, 409). "
        "New `parts` are checked as a new post's are; `scheduled_at` alone moves it.",
        request=PostUpdateSerializer,
        responses={
            200: PostSerializer,
            **errors(
                {
                    400: f"{POST_CONTENT} `reply_to` or `quote` without `parts` is `invalid`.",
                    401: NOT_SIGNED_IN,
                    403: f"{ACCOUNT_REFUSED} (while `reply_to` or `quote` is looked up) {NO_CSRF}",
                    404: NO_POST,
                    409: "It is no longer `scheduled` (`post_not_scheduled`), it is being worked on (`post_busy`), or "
                    f"its channel cannot publish (`channel_not_ready`). {NO_SESSION}",
                    413: "The body is too large (`request_too_large`).",
                    415: UNREADABLE_BODY,
                    429: "Too many posts lately (`posts_throttled`), or the PDS limits the account while `reply_to` "
                    "or `quote` is looked up (`rate_limited`): try again after `Retry-After`.",
                    502: f"{PDS[502]} (while `reply_to` or `quote` is looked up)",
                    503: f"{PDS[503]} (while `reply_to` or `quote` is looked up)",
                }
            ),
        },
    ),
)
class PostViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
    IntegrationsAPIView,
):
    """A user's posts; another user's post is a 404."""

    serializer_class = PostSerializer
    # JSON only: `parts` is a list of objects, which a form encoding cannot carry, and DRF's form parsers would
    # silently drop it (an edit answered 200 and never saved). Any other body is a 415 saying to send JSON.
    parser_classes = [SafeJSONParser]
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Post]:
        return Post.objects.filter(user=self.request.user).prefetch_related("parts")

    def list(self, request: Request) -> Response:
        return Response(PostPageSerializer(page_of(self.get_queryset(), request.query_params)).data)

    def create(self, request: Request) -> Response:
        data = PostInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        channel = Channel.objects.filter(pk=values["channel"], user=request.user).first()
        if channel is None:
            raise ValidationError({"channel": ["Not one of your channels."]}, code="invalid")
        post = services.accept(
            request.user,
            channel,
            _part_requests(values["parts"]),
            reply_to=values["reply_to"],
            quote=values["quote"],
            default_lang=richtext.default_lang(getattr(request, "LANGUAGE_CODE", None)),
            scheduled_at=values["scheduled_at"],
        )
        if post.status != Post.Status.SCHEDULED:
            services.publish(post.pk, claimed=post)
        return Response(PostSerializer(self._fresh(post.pk)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        post = self.get_object()
        data = PostUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "parts" in values:
            services.edit(
                post,
                _part_requests(values["parts"]),
                scheduled_at=values.get("scheduled_at"),
                reply_to=values.get("reply_to", post.reply_to_uri),
                quote=values.get("quote", post.quote_uri),
                default_lang=richtext.default_lang(getattr(request, "LANGUAGE_CODE", None)),
            )
        elif "reply_to" in values or "quote" in values:
            raise ValidationError({"parts": ["Give the parts too when changing reply_to or quote."]}, code="required")
        elif "scheduled_at" in values:
            services.reschedule(post, values["scheduled_at"])
        elif post.status != Post.Status.SCHEDULED:
            raise PostNotScheduled()
        return Response(PostSerializer(self._fresh(post.pk)).data)

    def _fresh(self, pk: int) -> Post:
        post = self.get_queryset().filter(pk=pk).first()
        if post is None:
            raise PostGone()  # deleted by its owner meanwhile
        return post

    def perform_destroy(self, instance: Post) -> None:
        services.delete_post(instance)

    @documented(
        summary="Cancel a scheduled post",
        description="Removes a post that is still `scheduled` (nothing was sent); once it has started publishing, "
        "`post_not_scheduled` (409).",
        request=None,
        responses={
            204: None,
            **errors(
                {
                    401: NOT_SIGNED_IN,
                    403: NO_CSRF,
                    404: NO_POST,
                    409: "It is no longer `scheduled` (`post_not_scheduled`) or is being worked on (`post_busy`).",
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        services.cancel(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @documented(
        summary="Publish a failed or waiting post again",
        description="Sends the same plan: records that already landed are found, never written twice.",
        request=None,
        responses={
            200: PostSerializer,
            **errors(
                {
                    401: NOT_SIGNED_IN,
                    403: NO_CSRF,
                    404: NO_POST,
                    409: "Another attempt runs (`post_busy`), or the post is neither `failed` nor `waiting` "
                    "(`post_not_retryable`).",
                }
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        post = self.get_object()
        outcome = services.publish(post.pk, retry=True)
        return Response(PostSerializer(self._fresh(outcome.post.pk)).data)


def _part_requests(parts: list[dict[str, Any]]) -> list[services.PartRequest]:
    return [
        services.PartRequest(
            text=part["text"],
            images=tuple(services.ImageRequest(i["media"], i["alt"]) for i in part["images"]),
            langs=tuple(part["langs"]),
            link_card=part["link_card"],
        )
        for part in parts
    ]
