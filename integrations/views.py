"""Channel pages for signed-in users. Thin: the work happens in `integrations.bluesky.services`."""

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from integrations.adapter import describe
from integrations.bluesky import options as bluesky_options
from integrations.bluesky import services
from integrations.bluesky.forms import ConnectBlueskyForm
from integrations.exceptions import IntegrationError
from integrations.http import client_ip
from integrations.models import Channel

logger = logging.getLogger(__name__)


def _own_channel(request: HttpRequest, pk: int) -> Channel:
    return get_object_or_404(Channel, pk=pk, user=request.user)


@login_required
def channel_list(request: HttpRequest) -> HttpResponse:
    """The user's channels with their health and the action each one needs."""
    channels = list(Channel.objects.filter(user=request.user).without_tokens())
    rows = [(channel, services.health(channel)) for channel in channels]
    for channel, health in services.take_owner_notices(rows):  # each new problem is told once
        messages.warning(
            request,
            _("@%(handle)s: %(label)s. %(advice)s")
            % {"handle": channel.handle, "label": health.label, "advice": health.advice},
        )
    return render(
        request,
        "integrations/channel_list.html",
        {
            "connected": [row for row in rows if row[1].state != "disconnected"],
            "disconnected": [row for row in rows if row[1].state == "disconnected"],
            "bluesky_enabled": bluesky_options.enabled(),
        },
    )


@login_required
def channel_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One channel: profile, session times, health, its recent posts and its event log."""
    channel = get_object_or_404(Channel.objects.without_tokens(), pk=pk, user=request.user)
    health = services.health(channel)
    context = {"channel": channel, "health": health, "events": services.recent_events(channel)}
    context.update(_feed(request, channel))
    return render(request, "integrations/channel_detail.html", context)


def _feed(request: HttpRequest, channel: Channel) -> dict[str, Any]:
    """The "Recent posts" part of the channel page: a page of posts, or why there is none (never an error page)."""
    cursor = request.GET.get("cursor") or None
    try:
        # The page itself reads no token; the feed needs the session, so it loads the full row.
        page = services.channel_feed(_own_channel(request, channel.pk), cursor)
    except IntegrationError as exc:
        logger.info("channel feed unavailable (%s) did=%s", exc.code, channel.did)
        return {"feed": None, "feed_error": describe(exc).message, "feed_cursor": cursor}
    return {"feed": page, "feed_error": "", "feed_cursor": cursor}


@method_decorator(login_required, name="dispatch")
@method_decorator(sensitive_post_parameters("app_password"), name="dispatch")
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
        context = {"form": form, "bluesky_enabled": bluesky_options.enabled()}
        context["service_url"] = services.service_url_or_none()
        return render(request, self.template_name, context, status=status)


@login_required
@require_POST
def channel_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Rotate the channel's session now and reload its profile."""
    channel = _own_channel(request, pk)
    try:
        services.refresh_channel(channel)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        messages.success(request, _("Refreshed @%(handle)s.") % {"handle": channel.handle})
    return _back(request, channel)


def _back(request: HttpRequest, channel: Channel) -> HttpResponse:
    if request.POST.get("next") == "detail":
        return redirect(channel)
    return redirect("integrations:channel-list")


@login_required
@require_POST
def channel_disconnect(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke the session on the PDS (where it answers) and forget the tokens."""
    channel = _own_channel(request, pk)
    if services.disconnect(channel):
        messages.success(
            request, _("Disconnected @%(handle)s; its session was signed out on Bluesky.") % {"handle": channel.handle}
        )
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
@require_POST
def channel_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a disconnected channel and its history."""
    channel = _own_channel(request, pk)
    try:
        services.remove(channel)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        messages.success(request, _("Removed @%(handle)s.") % {"handle": channel.handle})
    return redirect("integrations:channel-list")
