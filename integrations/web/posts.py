"""The post pages: the user's posts (scheduled ones by day, then the history), publishing a failed or waiting post
again, cancelling and deleting one, and an uploaded image shown to its owner. The work is done by
`integrations.bluesky.services`."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from integrations import pagination
from integrations.adapter import describe
from integrations.bluesky import services
from integrations.clock import local, shown
from integrations.exceptions import IntegrationDisabled, InvalidCursor, ScheduleMissed
from integrations.models import Channel, Media, Post, post_history_at
from integrations.web.clock import on_users_clock
from integrations.web.common import act, confirm_page, confirmed, own_post, scheduled_time, switched_off

POSTS_PER_PAGE = 20
SCHEDULED_PER_PAGE = 20


def tell_outcome(request: HttpRequest, outcome: services.Outcome) -> None:
    """Say what became of a post just sent: published, saved to wait, to be tried again, or not published."""
    post = outcome.post
    handle = post.channel.handle
    if post.status == Post.Status.WAITING and post.error_code == IntegrationDisabled.code:
        messages.info(request, _("Saved on @%(handle)s: %(reason)s") % {"handle": handle, "reason": post.error_message})
    elif post.status == Post.Status.PUBLISHED:
        messages.success(request, _("Published on @%(handle)s.") % {"handle": handle})
    elif post.status == Post.Status.WAITING:
        messages.warning(
            request,
            _("Not published on @%(handle)s yet: %(reason)s It is tried again automatically.")
            % {"handle": handle, "reason": post.error_message},
        )
    else:
        messages.error(
            request, _("Not published on @%(handle)s: %(reason)s") % {"handle": handle, "reason": post.error_message}
        )


def _posts_of(request: HttpRequest) -> QuerySet[Post]:
    """The user's posts with their parts and their channels (whose tokens are neither read nor decrypted)."""
    channels = Channel.objects.without_tokens()
    return Post.objects.filter(user=request.user).prefetch_related("parts", Prefetch("channel", queryset=channels))


@login_required
@on_users_clock
def post_list(request: HttpRequest) -> HttpResponse:
    """The user's posts: those scheduled, soonest first and by day, then the others newest first (by when they went
    out, were due, were cancelled or, for a post never scheduled that has not gone out, were written), with their
    status, their bsky.app links and what can be done with each. Each list goes on a page at a time: `?scheduled=`
    and `?cursor=` (one at a time; the first page shows both)."""
    posts = _posts_of(request)
    scheduled_cursor, cursor = request.GET.get("scheduled"), request.GET.get("cursor")
    try:
        history = None
        if not scheduled_cursor:
            done = posts.exclude(status=Post.Status.SCHEDULED).annotate(history_at=post_history_at())
            history = pagination.page(done, ("-history_at", "-pk"), cursor, POSTS_PER_PAGE)
        scheduled = None
        if not cursor:
            upcoming = posts.filter(status=Post.Status.SCHEDULED)
            scheduled = pagination.page(upcoming, ("scheduled_at", "pk"), scheduled_cursor, SCHEDULED_PER_PAGE)
    except InvalidCursor as exc:
        messages.error(request, describe(exc).message)
        return redirect("integrations:post-list")
    rows = _history_rows(history.items if history else ())
    scheduled_count = None
    if scheduled and (scheduled.cursor or scheduled_cursor):  # more than one page: say how many in all
        scheduled_count = Post.objects.filter(user=request.user, status=Post.Status.SCHEDULED).count()
    context = {
        "rows": rows,
        "history": history,
        "scheduled": scheduled,
        "scheduled_days": _by_day(scheduled.items) if scheduled else [],
        "scheduled_count": scheduled_count,
        "paged": bool(cursor or scheduled_cursor),
        "switched_off": switched_off(),
    }
    return render(request, "integrations/post_list.html", context)


def _history_rows(posts: Any) -> list[dict[str, Any]]:
    """The history's posts for the page: each with its parts' bsky.app links, its channel's health (asked once a
    channel) and why it did not go out, its time said on the page's clock."""
    healths: dict[int, services.Health] = {}
    rows = []
    for post in posts:
        if post.channel_id not in healths:
            healths[post.channel_id] = services.health(post.channel)
        parts = [(part, services.web_url(part.uri)) for part in post.parts.all()]
        reason = post.error_message
        if post.error_code == ScheduleMissed.code and post.scheduled_at:  # its time, said on this page's clock
            reason = describe(ScheduleMissed(shown(post.scheduled_at))).message
        rows.append({"post": post, "parts": parts, "health": healths[post.channel_id], "reason": reason})
    return rows


def _by_day(posts: Any) -> list[dict[str, Any]]:
    """Scheduled posts grouped by their day on the user's clock (the active one), soonest first:
    [{day, posts: [{post, time, parts}]}]."""
    days: list[dict[str, Any]] = []
    for post in posts:
        when = local(post.scheduled_at)
        if not days or days[-1]["day"] != when.date():
            days.append({"day": when.date(), "posts": []})
        days[-1]["posts"].append({"post": post, "time": when, "parts": list(post.parts.all())})
    return days


@login_required
@require_POST
def post_publish(request: HttpRequest, pk: int) -> HttpResponse:
    """Publish a failed or waiting post again: the same plan, so nothing is ever posted twice."""
    post = own_post(request, pk)
    act(request, lambda: services.publish_again(post), lambda outcome: tell_outcome(request, outcome))
    return redirect("integrations:post-list")


@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def post_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a scheduled post, once confirmed: it is not published and stays in the history as cancelled."""
    post = own_post(request, pk)
    if post.status == Post.Status.SCHEDULED and not confirmed(request):
        return confirm_page(
            request,
            title=_("Cancel the post scheduled for %(when)s?") % {"when": scheduled_time(post)},
            question=_("It is not published, and stays in your history as cancelled."),
            quoted=_first_text(post),
            button=_("Cancel the post"),
            keep=_("Keep it scheduled"),
            back_url=reverse("integrations:post-list"),
            back_label=_("Posts"),
        )
    act(
        request,
        lambda: services.cancel_post(post),
        lambda cancelled: (
            _("Cancelled the post scheduled on @%(handle)s for %(when)s.")
            % {"handle": post.channel.handle, "when": scheduled_time(post)}
        ),
    )
    return redirect("integrations:post-list")


@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def post_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a post, once confirmed: from Bluesky first when any of it may have been published."""
    post = own_post(request, pk)
    if not confirmed(request):
        parts = post.parts.count()
        return confirm_page(
            request,
            title=render_to_string("integrations/_delete_question.html", {"post": post, "parts": parts}).strip(),
            question=_("What reached Bluesky is deleted there too.") if post.attempts else "",
            quoted=_first_text(post),
            button=_("Delete"),
            keep=_("Keep it"),
            back_url=reverse("integrations:post-list"),
            back_label=_("Posts"),
        )
    act(request, lambda: services.delete_post(post), lambda deleted: _("Deleted the post."))
    return redirect("integrations:post-list")


def _first_text(post: Post) -> str:
    first = post.parts.order_by("index").first()
    return first.text if first else ""


@login_required
def media_file(request: HttpRequest, pk: int) -> FileResponse:
    """An uploaded image, to its owner only (uploads are private: never served from a public URL)."""
    media = get_object_or_404(Media, pk=pk, owner=request.user)
    response = FileResponse(media.file.open("rb"), content_type=media.mime)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response
