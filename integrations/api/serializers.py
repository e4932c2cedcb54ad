"""API representations. No token field exists on any serializer."""

from typing import Any

from django.core.validators import MinLengthValidator
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from integrations import pagination
from integrations.api.fields import AwareDateTimeField, LinkCardField, StatedLimit, TextInputField, UploadField
from integrations.bluesky import services
from integrations.bluesky.forms import ConnectBlueskyForm
from integrations.conf import app_settings
from integrations.models import Channel, ChannelEvent
from integrations.validators import MAX_DATABASE_ID


class HealthSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["active", "expiring", "degraded", "needs_reconnection", "deactivated", "suspended", "disconnected"]
    )
    label = serializers.CharField()
    advice = serializers.CharField()
    action = serializers.ChoiceField(choices=["", "refresh", "reconnect"])


class ChannelSerializer(serializers.ModelSerializer):
    health = serializers.SerializerMethodField()
    expired = serializers.SerializerMethodField(help_text="True when the session is gone (reconnect to use it).")
    needs_reconnection = serializers.SerializerMethodField()
    # Empty when unknown, so plain strings rather than URIs in the schema.
    avatar_url = serializers.CharField(read_only=True)
    pds_endpoint = serializers.CharField(read_only=True)
    handle_verified = serializers.BooleanField(
        read_only=True,
        allow_null=True,
        help_text="Whether the account's DID document confirms the handle (false: show it as not verified; null: "
        "not checked yet).",
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "provider",
            "did",
            "handle",
            "handle_verified",
            "display_name",
            "description",
            "avatar_url",
            "profile_status",
            "service_url",
            "pds_endpoint",
            "status",
            "health",
            "expired",
            "needs_reconnection",
            "access_expires_at",
            "refresh_expires_at",
            "next_retry_at",
            "connected_at",
            "refreshed_at",
        ]
        read_only_fields = fields

    def _health(self, obj: Channel) -> services.Health:
        cache = self.context.setdefault("_health", {})
        if obj.pk not in cache:
            cache[obj.pk] = services.health(obj)
        return cache[obj.pk]

    @extend_schema_field(HealthSerializer)
    def get_health(self, obj: Channel) -> dict[str, Any]:
        health = self._health(obj)
        return {"state": health.state, "label": health.label, "advice": health.advice, "action": health.action}

    def get_expired(self, obj: Channel) -> bool:
        return self._health(obj).expired

    def get_needs_reconnection(self, obj: Channel) -> bool:
        return self._health(obj).needs_reconnection


class ConnectBlueskySerializer(serializers.Serializer):
    identifier = TextInputField(max_length=2048, min_length=1, help_text="Handle (alice.bsky.social), email or DID.")
    app_password = TextInputField(
        write_only=True,
        trim_whitespace=False,
        min_length=1,
        max_length=256,
        style={"input_type": "password"},
        help_text="An app password (xxxx-xxxx-xxxx-xxxx). Never stored.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The web form's validation, written once: the same normalised identifier and the same messages."""
        form = ConnectBlueskyForm(data=attrs)
        if not form.is_valid():
            raise serializers.ValidationError(
                {field: [str(error) for error in errors] for field, errors in form.errors.items()},
                code=next(iter(form.errors.as_data().values()))[0].code or "invalid",
            )
        return form.cleaned_data


class ChannelEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChannelEvent
        fields = ["id", "kind", "error_code", "detail", "created_at"]
        read_only_fields = fields


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    retry_after = serializers.IntegerField(required=False)
    fields = serializers.DictField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- publishing -----------------------------------------------------------------------------------------------------
class MediaSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    mime = serializers.CharField(read_only=True)
    width = serializers.IntegerField(read_only=True)
    height = serializers.IntegerField(read_only=True)
    bytes = serializers.IntegerField(read_only=True, source="size")


class MediaUploadSerializer(serializers.Serializer):
    file = UploadField(help_text="A JPEG, PNG, WebP or GIF image (recognised by its content).")


class ImageInputSerializer(serializers.Serializer):
    media = serializers.IntegerField(
        min_value=1, max_value=MAX_DATABASE_ID, help_text="The id from POST /api/v1/media/."
    )
    alt = TextInputField(
        required=False, allow_blank=True, default="", trim_whitespace=False, max_length=services.MAX_ALT_TEXT
    )


def max_parts() -> int:
    """How many parts a thread may have (`INTEGRATIONS_POST_MAX_PARTS`, read when the schema is made)."""
    return min(app_settings.POST_MAX_PARTS, services.MAX_PLANNED_PARTS)


NOT_A_LIST = {"not_a_list": "This field must be a list (a JSON array)."}


def parts_field(**kwargs: Any) -> serializers.ListSerializer:
    """A post's parts: at least one, at most `max_parts()` (stated for the schema; refused as `too_many_parts`)."""
    return serializers.ListSerializer(
        child=PartInputSerializer(),
        allow_empty=False,
        validators=[MinLengthValidator(1), StatedLimit(max_parts)],
        error_messages=NOT_A_LIST,
        **kwargs,
    )


class PartInputSerializer(serializers.Serializer):
    text = TextInputField(allow_blank=True, trim_whitespace=False, max_length=30_000)
    images = serializers.ListSerializer(
        child=ImageInputSerializer(),
        required=False,
        default=list,
        validators=[StatedLimit(services.MAX_IMAGES_PER_POST)],
        error_messages=NOT_A_LIST,
        help_text=f"At most {services.MAX_IMAGES_PER_POST} (more: `too_many_images`).",
    )
    langs = serializers.ListField(
        child=TextInputField(min_length=1, max_length=64),
        required=False,
        default=list,
        validators=[StatedLimit(services.MAX_LANGS)],
        error_messages=NOT_A_LIST,
        help_text=f"BCP 47 language tags (en, pt-BR), at most {services.MAX_LANGS} (else `invalid_language`); "
        "missing: the request's language.",
    )
    link_card = LinkCardField(required=False, allow_null=True, default="auto")


SCHEDULED_AT_HELP = (
    "Publish at this time (RFC 3339 / ISO 8601 with time zone, at least a few seconds ahead) instead of now. A leap "
    "second (…T23:59:60Z) is read as …T23:59:59Z."
)
REPLY_TO_HELP = (
    "The post this one replies to (the first part, for a thread): its bsky.app address "
    "(https://bsky.app/profile/<handle or DID>/post/<rkey>) or its at:// URI "
    "(at://<DID or handle>/app.bsky.feed.post/<rkey>). "
    "Empty: not a reply. A post that cannot be found is refused (`invalid_reference`)."
)
QUOTE_HELP = (
    "The post this one quotes (embedded in the first part): its bsky.app address or its at:// URI, as for "
    "`reply_to`. Empty: no quote. A post that cannot be found is refused (`invalid_reference`)."
)


class PostInputSerializer(serializers.Serializer):
    channel = serializers.IntegerField(min_value=1, max_value=MAX_DATABASE_ID)
    parts = parts_field()
    reply_to = TextInputField(required=False, allow_blank=True, default="", max_length=1000, help_text=REPLY_TO_HELP)
    quote = TextInputField(required=False, allow_blank=True, default="", max_length=1000, help_text=QUOTE_HELP)
    scheduled_at = AwareDateTimeField(required=False, allow_null=True, default=None, help_text=SCHEDULED_AT_HELP)


class PostUpdateSerializer(serializers.Serializer):
    """A scheduled post's new time and/or content; what is left out stays as it was (`reply_to` and `quote` only
    with `parts`: the content is checked as a whole)."""

    parts = parts_field(required=False)
    reply_to = TextInputField(
        required=False, allow_blank=True, max_length=1000, help_text=f"{REPLY_TO_HELP} Only with `parts`."
    )
    quote = TextInputField(
        required=False, allow_blank=True, max_length=1000, help_text=f"{QUOTE_HELP} Only with `parts`."
    )
    scheduled_at = AwareDateTimeField(
        required=False,
        help_text="The new time (RFC 3339 / ISO 8601 with time zone; a leap second …T23:59:60Z is read as …:59).",
    )


class LinkCardSerializer(serializers.Serializer):
    uri = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    thumb = serializers.BooleanField(help_text="Whether the card carries a thumbnail.")


class PostPartSerializer(serializers.Serializer):
    text = serializers.CharField()
    uri = serializers.CharField(help_text="The record's at:// URI once published, else empty.")
    cid = serializers.CharField()
    url = serializers.SerializerMethodField(help_text="The post's bsky.app address once published, else empty.")
    card = serializers.SerializerMethodField(help_text="The link card the record carries, or null.")
    card_note = serializers.CharField(
        help_text="Why the part has no link card (or no thumbnail) though it has a link; empty when nothing is amiss."
    )

    @extend_schema_field(LinkCardSerializer(allow_null=True))
    def get_card(self, part: Any) -> dict[str, Any] | None:
        embed = (part.record or {}).get("embed") or {}
        if embed.get("$type") != "app.bsky.embed.external":
            return None
        external = embed["external"]
        return {
            "uri": external["uri"],
            "title": external["title"],
            "description": external["description"],
            "thumb": "thumb" in external,
        }

    def get_url(self, part: Any) -> str:
        return services.web_url(part.uri)


class PostErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class PostSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    channel = serializers.IntegerField(source="channel_id")
    status = serializers.ChoiceField(
        choices=["scheduled", "publishing", "waiting", "published", "failed", "cancelled", "deleting"],
        help_text="`cancelled`: a scheduled post cancelled before it went out (kept in the history). `deleting`: "
        "deleted while it was being published; its records are being deleted from Bluesky.",
    )
    parts = PostPartSerializer(many=True)
    reply_to = serializers.CharField(
        source="reply_to_uri", help_text="The at:// URI of the post this one replies to; empty when it is no reply."
    )
    quote = serializers.CharField(
        source="quote_uri", help_text="The at:// URI of the post this one quotes; empty when it quotes none."
    )
    error = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    scheduled_at = serializers.DateTimeField(allow_null=True, help_text="When a scheduled post is (was) due.")
    published_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(PostErrorSerializer(allow_null=True))
    def get_error(self, post: Any) -> dict[str, str] | None:
        return {"code": post.error_code, "message": post.error_message} if post.error_code else None


# --- the channel's feed ---------------------------------------------------------------------------------------------
class FeedQuerySerializer(serializers.Serializer):
    # Checked by the feed itself (`invalid_cursor`), the same way for the API and the channel page.
    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The `cursor` of the previous page, as it was given; omit for the newest posts.",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=services.FEED_MAX_LIMIT, default=services.FEED_DEFAULT_LIMIT
    )


class FeedItemSerializer(serializers.Serializer):
    uri = serializers.CharField(help_text="The record's at:// URI.")
    cid = serializers.CharField()
    text = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True, help_text="Null when the record's time is unreadable.")
    is_reply = serializers.BooleanField()
    is_quote = serializers.BooleanField()
    has_images = serializers.BooleanField()
    url = serializers.CharField(help_text="The post's bsky.app address (empty when its URI is not a post's).")
    published_by_skyport = serializers.BooleanField()


class FeedPageSerializer(serializers.Serializer):
    posts = FeedItemSerializer(many=True, source="items")
    cursor = serializers.CharField(allow_null=True, help_text="Pass as `?cursor=` for older posts; null at the end.")


# --- pages of the lists ---------------------------------------------------------------------------------------------
class PageQuerySerializer(serializers.Serializer):
    """`?cursor=…&limit=…` of every list (the same as the feed's): keyset pages, newest (or first) first."""

    # Checked by `integrations.pagination` (`invalid_cursor`, 400), the same way for the API and the pages.
    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=pagination.MAX_CURSOR_LENGTH,
        help_text="The `cursor` of the previous page, as it was given; omit for the first page.",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=pagination.MAX_LIMIT, default=pagination.DEFAULT_LIMIT
    )


class EventsQuerySerializer(PageQuerySerializer):
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=pagination.MAX_LIMIT,
        help_text="How many events; the default is as many as the channel's page shows (`INTEGRATIONS_EVENTS_SHOWN`).",
    )


NEXT_PAGE_HELP = "Pass as `?cursor=` for the next page; null on the last one."


# `many=False`: a page is one object, although it answers the `list` action (drf-spectacular would wrap it in an array).
@extend_schema_serializer(many=False)
class ChannelPageSerializer(serializers.Serializer):
    channels = ChannelSerializer(many=True, source="items")
    cursor = serializers.CharField(allow_null=True, help_text=NEXT_PAGE_HELP)


@extend_schema_serializer(many=False)
class PostPageSerializer(serializers.Serializer):
    posts = PostSerializer(many=True, source="items")
    cursor = serializers.CharField(allow_null=True, help_text=NEXT_PAGE_HELP)


@extend_schema_serializer(many=False)
class EventPageSerializer(serializers.Serializer):
    events = ChannelEventSerializer(many=True, source="items")
    cursor = serializers.CharField(allow_null=True, help_text=NEXT_PAGE_HELP)
