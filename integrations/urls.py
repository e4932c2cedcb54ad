"""User-facing channel and post pages. Include under a prefix, e.g. path("app/", include("integrations.urls"))."""

from django.urls import path

from integrations.web import views

app_name = "integrations"

urlpatterns = [
    path("channels", views.channel_list, name="channel-list"),
    path("channels/connect/bluesky", views.ConnectBlueskyView.as_view(), name="connect-bluesky"),
    path("channels/<int:pk>", views.channel_detail, name="channel-detail"),
    path("channels/<int:pk>/refresh", views.channel_refresh, name="channel-refresh"),
    path("channels/<int:pk>/disconnect", views.channel_disconnect, name="channel-disconnect"),
    path("channels/<int:pk>/remove", views.channel_remove, name="channel-remove"),
    path("posts", views.post_list, name="post-list"),
    path("posts/new", views.ComposeView.as_view(), name="compose"),
    path("posts/new/channels", views.compose_channels, name="compose-channels"),
    path("posts/link-card", views.link_card, name="link-card"),
    path("posts/link-card/image", views.link_card_image, name="link-card-image"),
    path("posts/reference", views.post_reference, name="post-reference"),
    path("posts/<int:pk>/edit", views.EditPostView.as_view(), name="post-edit"),
    path("posts/<int:pk>/publish", views.post_publish, name="post-publish"),
    path("posts/<int:pk>/cancel", views.post_cancel, name="post-cancel"),
    path("posts/<int:pk>/delete", views.post_delete, name="post-delete"),
    path("media/<int:pk>", views.media_file, name="media-file"),
    path("api-token", views.api_tokens, name="api-tokens"),
    path("api-token/create", views.api_token_create, name="api-token-create"),
    path("api-token/<str:token_id>/revoke", views.api_token_revoke, name="api-token-revoke"),
    path("api-token/<str:token_id>/regenerate", views.api_token_regenerate, name="api-token-regenerate"),
]
