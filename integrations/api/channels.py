"""The API's channels: list, read, connect a Bluesky account, refresh, the event log, the account's recent posts,
disconnect and remove. Thin: every action calls `integrations.bluesky.services`."""

from django.db.models import QuerySet
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from drf_spectacular.utils import extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from integrations.api.base import (
    ACCOUNT_REFUSED,
    NO_CHANNEL,
    NO_CSRF,
    NO_SESSION,
    NOT_SIGNED_IN,
    PAGE_QUERY,
    PAGES_DESCRIPTION,
    PDS,
    UNREADABLE_BODY,
    IntegrationsAPIView,
    errors,
    page_of,
)
from integrations.api.schema import documented
from integrations.api.serializers import (
    ChannelPageSerializer,
    ChannelSerializer,
    ConnectBlueskySerializer,
    EventPageSerializer,
    EventsQuerySerializer,
    FeedPageSerializer,
    FeedQuerySerializer,
    PageQuerySerializer,
)
from integrations.bluesky import services
from integrations.http import client_ip
from integrations.models import Channel


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
