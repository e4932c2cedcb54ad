"""API routes, relative to where the project includes them: `path("api/", include("integrations.api.urls"))` serves
`/api/v1/…`, `/api/schema/` and `/api/docs/`."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from integrations.api.schema import documented
from integrations.api.views import ChannelViewSet, MediaViewSet, PostViewSet

router = DefaultRouter(trailing_slash=True)
router.register("channels", ChannelViewSet, basename="channel")
router.register("media", MediaViewSet, basename="media")
router.register("posts", PostViewSet, basename="post")

SCHEMA_SETTINGS = {
    "TITLE": "Skyport API",
    "DESCRIPTION": "Connect Bluesky accounts with app passwords and keep their sessions alive.",
    "VERSION": "1.0.0",
    # The enum hook is drf-spectacular's default; `add_links` adds the OpenAPI links between operations.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "integrations.api.schema.add_links"],
}


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema of the app's API, with the app's own title and settings."""

    custom_settings = SCHEMA_SETTINGS
    schema = AutoSchema()

    @documented(exclude=True)  # the schema endpoint is not part of the API it describes
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class DocsView(SpectacularSwaggerView):
    """Swagger UI from the sidecar package's local static files (no CDN), whatever the project's settings say."""

    title = SCHEMA_SETTINGS["TITLE"]
    schema = AutoSchema()

    @documented(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        from django.templatetags.static import static

        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon() -> str:
        from django.templatetags.static import static

        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")


@csrf_exempt  # it changes nothing; token-authenticated clients send no CSRF token
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown v1/ paths answer in the API's error shape, not with an HTML page."""
    return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)


urlpatterns = [
    path("v1/", include((router.urls, "integrations-api"))),
    re_path(r"^v1/(?P<rest>.*)$", not_found),
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
]
