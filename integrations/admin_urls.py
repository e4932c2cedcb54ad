"""Admin pages of the integrations app.

Include them before the admin itself: `path("admin/api-integration/", include("integrations.admin_urls"))`, then
`path("admin/", admin.site.urls)`.
"""

from django.contrib import admin
from django.urls import path

from integrations.bluesky.admin import BlueskySettingsView

app_name = "integrations-admin"

urlpatterns = [
    path("bluesky", admin.site.admin_view(BlueskySettingsView(admin.site)), name="bluesky"),
]
