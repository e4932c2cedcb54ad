"""What every page of the app shares: the signed-in user's own channel or post, the banner while Bluesky is switched
off, the confirmation step of a destructive action, and saying how an action went."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from integrations.adapter import describe
from integrations.bluesky import options as bluesky_options
from integrations.clock import local
from integrations.exceptions import IntegrationDisabled, IntegrationError
from integrations.models import Channel, Post


def own_channel(request: HttpRequest, pk: int) -> Channel:
    """The signed-in user's channel `pk` (another user's is a 404)."""
    return get_object_or_404(Channel, pk=pk, user=request.user)


def own_post(request: HttpRequest, pk: int) -> Post:
    """The signed-in user's post `pk` with its channel (another user's is a 404)."""
    return get_object_or_404(Post.objects.select_related("channel"), pk=pk, user=request.user)


def switched_off() -> str:
    """What every page says while the administrator has Bluesky switched off ("" while it is on): one wording."""
    return "" if bluesky_options.enabled() else describe(IntegrationDisabled()).message


def scheduled_time(post: Post) -> str:
    """A scheduled post's time for a message, on the user's clock (which the page names)."""
    return f"{local(post.scheduled_at):%Y-%m-%d %H:%M}"


def act[T](request: HttpRequest, action: Callable[[], T], success: Callable[[T], str | None]) -> None:
    """Do `action` for the user and say how it went: the words `success` gives for its result (None: it told the
    user itself), else what went wrong, in the user's words."""
    try:
        result = action()
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
        return
    words = success(result)
    if words is not None:
        messages.success(request, words)


# --- confirmations: a destructive action asks first, with or without the page's script --------------------------
def confirmed(request: HttpRequest) -> bool:
    """Whether this request confirms its action: a POST carrying `confirm=yes` (what every confirmation form sends).

    Anything else (a GET, or a POST from an old page or another site's form without it) gets the confirmation page
    instead, so nothing is disconnected, cancelled or deleted in one click."""
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def confirm_page(request: HttpRequest, **context: Any) -> HttpResponse:
    """The confirmation step as a page of its own: `title`, `question`, `button`, `keep` (the way back's words),
    `back_url`, `back_label`, and optionally `detail`, `quoted` (a post's text) and `next`."""
    context.setdefault("action_url", request.path)
    context.setdefault("next", request.POST.get("next", request.GET.get("next", "")))
    return render(request, "integrations/confirm.html", context)
