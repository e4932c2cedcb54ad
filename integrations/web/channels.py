"""The channel pages: the list with each channel's health, one channel (profile, schedule, recent posts, event
log), connecting a Bluesky account, and refresh, disconnect and remove. The work is done by
`integrations.bluesky.services`."""

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from integrations import pagination
from integrations.adapter import describe
from integrations.bluesky import options as bluesky_options
from integrations.bluesky import services
from integrations.bluesky.forms import ConnectBlueskyForm
from integrations.exceptions import IntegrationError, InvalidCursor
from integrations.http import client_ip
from integrations.models import Channel, Post
from integrations.web.clock import on_users_clock
from integrations.web.common import act, confirm_page, confirmed, own_channel, switched_off

logger = logging.getLogger(__name__)

CHANNELS_PER_PAGE = 50


@login_required
@on_users_clock
def channel_list(request: HttpRequest) -> HttpResponse:
    """The user's channels with their health and the action each one needs, a page at a time (connected ones and
    disconnected ones each have their own pages: `?cursor=`, `?disconnected=`)."""
    channels = Channel.objects.filter(user=request.user).without_tokens()
    connected_cursor, disconnected_cursor = request.GET.get("cursor"), request.GET.get("disconnected")
    try:
        connected = None
        if not disconnected_cursor:
            listed = channels.exclude(status=Channel.Status.DISCONNECTED)
            connected = pagination.page(listed, Channel._meta.ordering, connected_cursor, CHANNELS_PER_PAGE)
        disconnected = None
        if not connected_cursor:
            listed = channels.filter(status=Channel.Status.DISCONNECTED)
            disconnected = pagination.page(listed, Channel._meta.ordering, disconnected_cursor, CHANNELS_PER_PAGE)
    except InvalidCursor as exc:
        messages.error(request, describe(exc).message)
        return redirect("integrations:channel-list")
    shown_rows = {
        channel.pk: (channel, services.health(channel))
        for page in (connected, disconnected)
        if page is not None
        for channel in page.items
    }
    # Each new problem is told once, also for channels on other pages: those that may have one are few.
    rows = {**{c.pk: (c, services.health(c)) for c in services.channels_with_problems(channels)}, **shown_rows}
    for channel, health in services.take_owner_notices(list(rows.values())):
        messages.warning(
            request,
            _("@%(handle)s: %(label)s. %(advice)s")
            % {"handle": channel.handle, "label": health.label, "advice": health.advice},
        )
    return render(
        request,
        "integrations/channel_list.html",
        {
            "connected": [shown_rows[c.pk] for c in connected.items] if connected else [],
            "connected_page": connected,
            "disconnected": [shown_rows[c.pk] for c in disconnected.items] if disconnected else [],
            "disconnected_page": disconnected,
            "paged": bool(connected_cursor or disconnected_cursor),
            "bluesky_enabled": bluesky_options.enabled(),
            "switched_off": switched_off(),
            "publish_states": services.READY_STATES,
        },
    )


@login_required
@on_users_clock
def channel_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One channel: profile, session times, health, its recent posts and its event log."""
    channel = get_object_or_404(Channel.objects.without_tokens(), pk=pk, user=request.user)
    health = services.health(channel)
    context = {
        "channel": channel,
        "health": health,
        "events": services.recent_events(channel),
        "can_publish": services.can_publish(health),
        "switched_off": switched_off(),
    }
    context.update(_schedule_of(request, channel))
    context.update(_feed(request, channel))
    return render(request, "integrations/channel_detail.html", context)


def _schedule_of(request: HttpRequest, channel: Channel) -> dict[str, Any]:
    """The channel's next scheduled post, and the scheduled posts that fell due but wait for the channel (or the
    integration) to be able to publish."""
    upcoming = channel.posts.filter(status=Post.Status.SCHEDULED).order_by("scheduled_at", "pk")
    next_post = upcoming.prefetch_related("parts").first()
    held = channel.posts.filter(status=Post.Status.WAITING, scheduled_at__isnull=False).order_by("scheduled_at")
    return {
        "next_scheduled": next_post,
        "scheduled_count": upcoming.count(),
        "held_posts": list(held),
    }


def _feed(request: HttpRequest, channel: Channel) -> dict[str, Any]:
    """The "Recent posts" part of the channel page: a page of posts, or why there is none (never an error page)."""
    cursor = request.GET.get("cursor") or None
    try:
        # The page itself reads no token; the feed needs the session, so it loads the full row.
        page = services.channel_feed(own_channel(request, channel.pk), cursor)
    except IntegrationError as exc:
        logger.info("channel feed unavailable (%s) did=%s", exc.code, channel.did)
        return {"feed": None, "feed_error": describe(exc).message, "feed_cursor": cursor}
    return {"feed": page, "feed_error": "", "feed_cursor": cursor}


@method_decorator(login_required, name="dispatch")
@method_decorator(sensitive_post_parameters("app_password"), name="dispatch")
@method_decorator(on_users_clock, name="dispatch")
class ConnectBlueskyView(View):
    """Connect (or reconnect) a Bluesky account with a handle and an app password."""

    template_name = "integrations/connect_bluesky.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        initial = {"identifier": request.GET.get("identifier", "")}
        return self._render(request, ConnectBlueskyForm(initial=initial))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ConnectBlueskyForm(request.POST)
        if form.is_valid():
            try:
                channel = services.connect(
                    request.user,
                    form.cleaned_data["identifier"],
                    form.cleaned_data["app_password"],
                    ip=client_ip(request.META),
                )
            except IntegrationError as exc:
                form.add_error(None, describe(exc).message)
            else:
                if channel.profile_status == Channel.ProfileStatus.UNAVAILABLE:
                    messages.warning(
                        request,
                        _(
                            "Connected @%(handle)s, but its profile could not be loaded; it will be retried on the "
                            "next refresh."
                        )
                        % {"handle": channel.handle},
                    )
                else:
                    messages.success(request, _("Connected @%(handle)s.") % {"handle": channel.handle})
                return redirect("integrations:channel-list")
        return self._render(request, form, status=400)

    def _render(self, request: HttpRequest, form: ConnectBlueskyForm, status: int = 200) -> HttpResponse:
        context = {"form": form, "bluesky_enabled": bluesky_options.enabled(), "switched_off": switched_off()}
        context["service_url"] = services.service_url_or_none()
        return render(request, self.template_name, context, status=status)


@login_required
@require_POST
def channel_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Rotate the channel's session now and reload its profile."""
    channel = own_channel(request, pk)
    act(
        request,
        lambda: services.refresh_channel(channel),
        lambda refreshed: _("Refreshed @%(handle)s.") % {"handle": channel.handle},
    )
    return _back(request, channel)


def _back(request: HttpRequest, channel: Channel) -> HttpResponse:
    if request.POST.get("next") == "detail":
        return redirect(channel)
    return redirect("integrations:channel-list")


@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def channel_disconnect(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke the session on the PDS (where it answers) and forget the tokens, once confirmed."""
    channel = own_channel(request, pk)
    if not confirmed(request):
        return confirm_page(
            request,
            title=_("Disconnect @%(handle)s?") % {"handle": channel.handle},
            question=_(
                "Its session is signed out on Bluesky and its tokens are removed here. Posts scheduled on it wait "
                "until you connect it again."
            ),
            button=_("Disconnect"),
            keep=_("Keep it connected"),
            back_url=channel.get_absolute_url(),
            back_label=f"@{channel.handle}",
        )
    already = channel.status == Channel.Status.DISCONNECTED
    if services.disconnect(channel):
        messages.success(
            request, _("Disconnected @%(handle)s; its session was signed out on Bluesky.") % {"handle": channel.handle}
        )
    elif already:
        messages.info(request, _("@%(handle)s was already disconnected.") % {"handle": channel.handle})
    else:
        messages.warning(
            request,
            _(
                "Disconnected @%(handle)s and removed its tokens here. Bluesky could not be reached to sign the "
                "session out: you can revoke the app password at https://bsky.app/settings/app-passwords."
            )
            % {"handle": channel.handle},
        )
    return _back(request, channel)


@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def channel_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a disconnected channel and its history, once confirmed."""
    channel = own_channel(request, pk)
    if not confirmed(request):
        return confirm_page(
            request,
            title=_("Remove @%(handle)s?") % {"handle": channel.handle},
            question=_("The channel, its events and its posts' history here are deleted. Nothing on Bluesky changes."),
            button=_("Remove"),
            keep=_("Keep it"),
            back_url=reverse("integrations:channel-list"),
            back_label=_("Channels"),
        )
    act(
        request,
        lambda: services.remove(channel),
        lambda removed: _("Removed @%(handle)s.") % {"handle": channel.handle},
    )
    return redirect("integrations:channel-list")
