"""API representations. No token field exists on any serializer."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.bluesky import services
from integrations.bluesky.forms import ConnectBlueskyForm
from integrations.models import Channel, ChannelEvent


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

    class Meta:
        model = Channel
        fields = [
            "id",
            "provider",
            "did",
            "handle",
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
    identifier = serializers.CharField(
        max_length=2048, min_length=1, help_text="Handle (alice.bsky.social), email or DID."
    )
    app_password = serializers.CharField(
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
