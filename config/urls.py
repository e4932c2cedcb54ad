from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="integrations:channel-list", permanent=False)),
    # Browsers ask for /favicon.ico where a page names no icon (the admin's pages): the app's own icon.
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("integrations/favicon.svg"))),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/api-integration/", include("integrations.admin_urls")),
    path("admin/", admin.site.urls),
    path("app/", include("integrations.urls")),
    path("api/", include("integrations.api.urls")),
]
