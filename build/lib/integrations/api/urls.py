"""API routes. Include at the site root: path("", include("integrations.api.urls"))."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from integrations.api.views import ChannelViewSet

router = DefaultRouter(trailing_slash=True)
router.register("channels", ChannelViewSet, basename="channel")


@csrf_exempt  # it changes nothing; token-authenticated clients send no CSRF token
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown /api/v1/ paths answer in the API's error shape, not with an HTML page."""
    return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)


urlpatterns = [
    path("api/v1/", include((router.urls, "integrations-api"))),
    re_path(r"^api/v1/(?P<rest>.*)$", not_found),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
