"""Admin: read-only channels with their events, posts, and the options table (the Bluesky settings page is
`integrations.bluesky.admin`)."""

from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Prefetch, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrations.bluesky import services
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError
from integrations.models import MANAGE_PERMISSION, Channel, ChannelEvent, IntegrationOption, Post, PostPart


@admin.register(IntegrationOption)
class IntegrationOptionAdmin(admin.ModelAdmin):
    """The raw option rows are edited through the Bluesky page; the changelist leads there."""

    list_display = ("key", "value", "updated_at", "updated_by")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("integrations-admin:bluesky"))


# --- big tables --------------------------------------------------------------------------------------------------
# Counting every row of a big table on each changelist page costs more than the page: above this many rows
# (PostgreSQL's estimate), the planner's estimate is shown instead.
EXACT_COUNT_BELOW = 10_000
# A search resolves each field's matches to ids first, at most this many per field (a broader search is cut short,
# and says so).
SEARCH_MATCHES = 1000
SEARCH_LENGTH = 500  # longer than any handle, DID or at:// URI


class EstimatedCountPaginator(Paginator):
    """Counts exactly on small tables and on SQLite; on PostgreSQL, a list the planner expects to hold more than
    EXACT_COUNT_BELOW rows is counted by its estimate (the table's statistics, `reltuples`, through EXPLAIN)."""

    @cached_property
    def count(self) -> int:
        return estimated_count(self.object_list)


def estimated_count(queryset: QuerySet[Any]) -> int:
    """The number of rows, or PostgreSQL's estimate of it when that is EXACT_COUNT_BELOW or more."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return queryset.count()
    try:
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # e.g. a search that matched nothing
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return estimate if estimate >= EXACT_COUNT_BELOW else queryset.count()


def _first_ids(queryset: QuerySet[Any], field: str = "pk") -> list[int]:
    return list(queryset.order_by().values_list(field, flat=True)[:SEARCH_MATCHES])


def matching_channel_ids(term: str) -> tuple[list[int], bool]:
    """Channels whose handle, DID or owner's username starts with `term` (each through its index); whether the
    search was cut short at SEARCH_MATCHES per field."""
    term = term.strip().removeprefix("@")
    if not term:
        return [], False
    user_ids = _first_ids(get_user_model().objects.filter(username__startswith=term))
    found = [
        _first_ids(Channel.objects.filter(handle__startswith=term.lower())),
        _first_ids(Channel.objects.filter(did__startswith=term)),
        _first_ids(Channel.objects.filter(user_id__in=user_ids)) if user_ids else [],
    ]
    cut = len(user_ids) == SEARCH_MATCHES or any(len(ids) == SEARCH_MATCHES for ids in found)
    return sorted({pk for ids in found for pk in ids}), cut


class BigTableAdmin(admin.ModelAdmin):
    """A changelist that stays as fast with a million rows: estimated counts, no second count of the whole table,
    and a search that resolves its matches to ids first (`matching_ids`), each through an index."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False  # a second count of the whole table on every search

    def matching_ids(self, request: HttpRequest, term: str) -> tuple[Q, bool]:
        raise NotImplementedError

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> tuple[Any, bool]:
        term = "".join(ch for ch in search_term if ch.isprintable()).strip()[:SEARCH_LENGTH]
        if not term:
            return queryset, False
        matches, cut = self.matching_ids(request, term)
        if cut:
            messages.info(
                request,
                _("Only the first %(count)d matches of each kind are listed: make the search longer.")
                % {"count": SEARCH_MATCHES},
            )
        return queryset.filter(matches), False


class LatestEventsFormSet(BaseInlineFormSet):
    """Only the channel's latest events (as many as its page shows), not every event it ever had."""

    def get_queryset(self) -> QuerySet[ChannelEvent]:
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset().order_by("-created_at", "-pk")[: app_settings.EVENTS_SHOWN]
        return self._latest


class ChannelEventInline(admin.TabularInline):
    model = ChannelEvent
    formset = LatestEventsFormSet
    fields = ("created_at", "kind", "error_code", "detail")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at", "-pk")

    @property
    def verbose_name_plural(self) -> str:  # type: ignore[override]
        count, days = app_settings.EVENTS_SHOWN, app_settings.EVENTS_RETENTION_DAYS
        if days <= 0:
            return _("Channel events: the latest %(count)d") % {"count": count}
        words = _("Channel events: the latest %(count)d (events are kept %(days)d days)")
        return words % {"count": count, "days": days}


@admin.register(Channel)
class ChannelAdmin(BigTableAdmin):
    """Read-only: tokens are never shown; health and events are; sessions can be refreshed."""

    list_display = ("handle", "did", "user", "health_label", "refresh_expires_at", "refreshed_at", "connected_at")
    list_filter = ("status", "provider", "handle_verified")
    search_fields = ("handle", "did", "user__username")  # how the search box is offered; `matching_ids` searches
    search_help_text = _("The start of a handle, a DID or the owner's username.")
    list_select_related = ("user",)
    fieldsets = (
        (
            "Account",
            {"fields": ("user", "provider", "did", "handle", "handle_verified", "display_name", "profile_status")},
        ),
        ("Server", {"fields": ("service_url", "pds_endpoint", "scope")}),
        ("Health", {"fields": ("health_label", "status", "last_error_code", "next_retry_at")}),
        (
            "Session (tokens are never shown)",
            {"fields": ("access_expires_at", "refresh_expires_at", "connected_at", "refreshed_at")},
        ),
    )
    view_on_site = False  # the channel page belongs to its owner; an admin would get a 404 there
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    inlines = [ChannelEventInline]
    actions = ["refresh_selected"]

    @admin.display(description="Health")
    def health_label(self, obj: Channel) -> str:
        health = services.health(obj)
        return format_html('<span title="{}">{}</span>', health.advice, health.label)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a deleted row would leave its session alive on the PDS: owners disconnect instead

    def get_queryset(self, request: HttpRequest) -> QuerySet[Channel]:
        return super().get_queryset(request).without_tokens()

    def matching_ids(self, request: HttpRequest, term: str) -> tuple[Q, bool]:
        ids, cut = matching_channel_ids(term)
        return Q(pk__in=ids), cut

    def has_refresh_permission(self, request: HttpRequest) -> bool:
        """Refreshing talks to the PDS with users' sessions: integration managers only, not view-only staff."""
        return request.user.has_perm(MANAGE_PERMISSION)

    @admin.action(description="Refresh selected channels' sessions", permissions=["refresh"])
    def refresh_selected(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        done, failed = 0, []
        for channel in queryset:
            try:
                services.refresh_channel(channel)
            except IntegrationError as exc:
                failed.append(f"@{channel.handle}: {exc.code}")
            else:
                done += 1
        if done:
            messages.success(
                request,
                ngettext("Refreshed %(count)d channel.", "Refreshed %(count)d channels.", done) % {"count": done},
            )
        if failed:
            messages.warning(request, _("Not refreshed: %(channels)s") % {"channels": "; ".join(failed)})


class PostPartInline(admin.TabularInline):
    model = PostPart
    fields = ("index", "text", "uri", "cid")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


TEXT_SEARCH = "text:"


@admin.register(Post)
class PostAdmin(BigTableAdmin):
    """Read-only: what was published where, and why a post failed; failed posts can be retried."""

    list_display = ("pk", "channel", "user", "status", "attempts", "error_code", "created_at", "published_at")
    list_filter = ("status",)
    search_fields = ("channel__handle", "user__username", "parts__text")  # offered; `matching_ids` searches
    search_help_text = _(
        "A post's number or at:// URI, or the start of its channel's handle or DID or its author's username. "
        "To search the posts' text (slower), start with text:"
    )
    list_select_related = ("user",)
    fields = (
        "user",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "error_code",
        "error_message",
        "reply_to_uri",
        "quote_uri",
        "created_at",
        "published_at",
    )
    readonly_fields = fields
    inlines = [PostPartInline]
    actions = ["retry_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Post]:
        # The channel's name, never its tokens: nothing is decrypted for a list of posts.
        channels = Channel.objects.without_tokens()
        return super().get_queryset(request).prefetch_related(Prefetch("channel", queryset=channels))

    def matching_ids(self, request: HttpRequest, term: str) -> tuple[Q, bool]:
        if term.lower().startswith(TEXT_SEARCH):  # asked for: a scan of the parts, cut short at SEARCH_MATCHES
            text = term[len(TEXT_SEARCH) :].strip()
            ids = _first_ids(PostPart.objects.filter(text__icontains=text), "post_id") if text else []
            return Q(pk__in=ids), len(ids) == SEARCH_MATCHES
        if term.startswith("at://"):
            return Q(pk__in=_first_ids(PostPart.objects.filter(uri=term), "post_id")), False
        channel_ids, cut = matching_channel_ids(term)
        user_ids = _first_ids(get_user_model().objects.filter(username__startswith=term))
        matches = Q(channel_id__in=channel_ids) | Q(user_id__in=user_ids)
        if term.removeprefix("#").isdigit() and len(term) <= 18:
            matches |= Q(pk=int(term.removeprefix("#")))
        return matches, cut or len(user_ids) == SEARCH_MATCHES

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting here would leave the records on Bluesky: owners delete their posts

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Publishing talks to Bluesky with users' sessions: integration managers only."""
        return request.user.has_perm(MANAGE_PERMISSION)

    @admin.action(description=_("Retry the selected failed posts"), permissions=["retry"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Post]) -> None:
        done, failed = 0, []
        for post in queryset.filter(status__in=[Post.Status.FAILED, Post.Status.WAITING]):
            try:
                outcome = services.publish_again(post)
            except IntegrationError as exc:
                failed.append(f"#{post.pk}: {exc.code}")
                continue
            if outcome.error:
                failed.append(f"#{post.pk}: {outcome.error.code}")
            else:
                done += 1
        if done:
            messages.success(
                request, ngettext("Published %(count)d post.", "Published %(count)d posts.", done) % {"count": done}
            )
        if failed:
            messages.warning(request, _("Not published: %(posts)s") % {"posts": "; ".join(failed)})
