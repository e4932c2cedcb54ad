"""The API's posts and the images they carry: upload an image; list, read, publish (now or at a time), edit or
reschedule, cancel, publish again and delete a post. Thin: every action calls `integrations.bluesky.services`,
which the web composer calls too."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from integrations.api.base import (
    ACCOUNT_REFUSED,
    NO_CSRF,
    NO_POST,
    NO_SESSION,
    NOT_SIGNED_IN,
    PAGE_QUERY,
    PAGES_DESCRIPTION,
    PDS,
    POST_CONTENT,
    UNREADABLE_BODY,
    IntegrationsAPIView,
    errors,
    page_of,
)
from integrations.api.parsers import SafeJSONParser
from integrations.api.schema import documented
from integrations.api.serializers import (
    MediaSerializer,
    MediaUploadSerializer,
    PageQuerySerializer,
    PostInputSerializer,
    PostPageSerializer,
    PostSerializer,
    PostUpdateSerializer,
)
from integrations.bluesky import services
from integrations.exceptions import PostGone, PostNotScheduled
from integrations.models import Channel, Post


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
        outcome = services.submit_post(
            request.user,
            channel,
            _part_requests(values["parts"]),
            reply_to=values["reply_to"],
            quote=values["quote"],
            default_lang=services.post_language(request),
            scheduled_at=values["scheduled_at"],
        )
        return Response(PostSerializer(self._fresh(outcome.post.pk)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        post = self.get_object()
        data = PostUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "parts" in values:
            services.edit_post(
                post,
                _part_requests(values["parts"]),
                scheduled_at=values.get("scheduled_at"),
                reply_to=values.get("reply_to", post.reply_to_uri),
                quote=values.get("quote", post.quote_uri),
                default_lang=services.post_language(request),
            )
        elif "reply_to" in values or "quote" in values:
            raise ValidationError({"parts": ["Give the parts too when changing reply_to or quote."]}, code="required")
        elif "scheduled_at" in values:
            services.reschedule_post(post, values["scheduled_at"])
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
        services.cancel_post(self.get_object())
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
        outcome = services.publish_again(post)
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
