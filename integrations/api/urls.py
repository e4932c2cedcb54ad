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

from integrations.api.channels import ChannelViewSet
from integrations.api.posts import MediaViewSet, PostViewSet
from integrations.api.schema import documented

router = DefaultRouter(trailing_slash=True)
router.register("channels", ChannelViewSet, basename="channel")
router.register("media", MediaViewSet, basename="media")
router.register("posts", PostViewSet, basename="post")

DESCRIPTION = """Publish to Bluesky from your own programs, as you do in Skyport's pages.

- **Channels**: connect a Bluesky account with an app password (never stored: only its session, encrypted), see
  its health, refresh or disconnect it, read its event log and its recent posts (its feed, `listRecords`).
- **Media**: upload an image (multipart `file`), then attach its `id` with alt text to a post's part.
- **Posts**: publish a post, or a thread (several `parts`), now or at a scheduled time (`scheduled_at`); reply
  to a post (`reply_to`) or quote one (`quote`) by its bsky.app address or at:// URI. A scheduled post can be
  edited, moved or cancelled; a failed one published again (never twice); any one deleted, from Bluesky too.

**Authentication.** Every call needs a token. Sign in to Skyport and open its **API token** page
(`/app/api-token`, where the project serves the app's pages under `app/`) to create one; its key is shown once.
Send it with every call: `Authorization: Token <key>`. (A signed-in browser session works too, with the CSRF
token for writes.)

Lists come a page at a time (`limit`, `cursor`). Every error has one shape:
`{"error": {"code": "…", "message": "…"}}`, with `retry_after` on a 429 and `fields` on an `invalid` input.
"""

SCHEMA_SETTINGS = {
    "TITLE": "Skyport API",
    "DESCRIPTION": DESCRIPTION,
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
    template_name = "integrations/swagger_ui.html"  # spectacular's page with a way back to the app
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
    """Unknown paths under the API answer in the API's error shape, not with the host project's HTML page."""
    return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)


urlpatterns = [
    path("v1/", include((router.urls, "integrations-api"))),
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: every other path under the API's prefix. `[\s\S]`, not `.`, which stops at a newline (`/v1/posts/1%0A/`
    # would reach the project's HTML 404).
    re_path(r"^(?P<rest>[\s\S]*)\Z", not_found),
]
