"""User-facing channel and post pages. Include under a prefix, e.g. path("app/", include("integrations.urls"))."""

from django.urls import path

from integrations.web import cards, channels, posts, tokens
from integrations.web.compose import views as compose

app_name = "integrations"

urlpatterns = [
    path("channels", channels.channel_list, name="channel-list"),
    path("channels/connect/bluesky", channels.ConnectBlueskyView.as_view(), name="connect-bluesky"),
    path("channels/<int:pk>", channels.channel_detail, name="channel-detail"),
    path("channels/<int:pk>/refresh", channels.channel_refresh, name="channel-refresh"),
    path("channels/<int:pk>/disconnect", channels.channel_disconnect, name="channel-disconnect"),
    path("channels/<int:pk>/remove", channels.channel_remove, name="channel-remove"),
    path("posts", posts.post_list, name="post-list"),
    path("posts/new", compose.ComposeView.as_view(), name="compose"),
    path("posts/new/channels", compose.compose_channels, name="compose-channels"),
    path("posts/link-card", cards.link_card, name="link-card"),
    path("posts/link-card/image", cards.link_card_image, name="link-card-image"),
    path("posts/reference", cards.post_reference, name="post-reference"),
    path("posts/<int:pk>/edit", compose.EditPostView.as_view(), name="post-edit"),
    path("posts/<int:pk>/publish", posts.post_publish, name="post-publish"),
    path("posts/<int:pk>/cancel", posts.post_cancel, name="post-cancel"),
    path("posts/<int:pk>/delete", posts.post_delete, name="post-delete"),
    path("media/<int:pk>", posts.media_file, name="media-file"),
    path("api-token", tokens.api_tokens, name="api-tokens"),
    path("api-token/create", tokens.api_token_create, name="api-token-create"),
    path("api-token/<str:token_id>/revoke", tokens.api_token_revoke, name="api-token-revoke"),
    path("api-token/<str:token_id>/regenerate", tokens.api_token_regenerate, name="api-token-regenerate"),
]
