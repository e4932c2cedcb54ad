from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # The settings page keeps its address; it must come before the admin's own URLs.
    path("admin/api-integration/", include("integrations.admin_urls")),
    path("admin/", admin.site.urls),
    path("social/", include("integrations.urls")),
    path("bsky-api/", include("integrations.api.urls")),
]
