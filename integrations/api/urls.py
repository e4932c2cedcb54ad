"""API routes. Include at the site root: path("", include("integrations.api.urls"))."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from integrations.api.views import ChannelViewSet

router = DefaultRouter(trailing_slash=True)
router.register("channels", ChannelViewSet, basename="channel")

urlpatterns = [
    path("api/v1/", include((router.urls, "integrations-api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
