"""What the composer's script asks while the user types: the link card a part will carry, that card's thumbnail,
and the post a "Reply to" or "Quote" field names. Each makes the server read a page or a post, so each is limited
per user."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from integrations.bluesky import services
from integrations.clock import local
from integrations.security.throttling import over_rate
from integrations.web.clock import on_users_clock
from integrations.web.compose.cards import card_for, thumb_link_target
from integrations.web.compose.channels import channel_options
from integrations.web.compose.preview import look_up_target

# Card previews make the server fetch pages: a user may ask for this many per window (typing pauses, not pages).
CARD_PREVIEWS_PER_WINDOW = (120, 300)


def _throttled(request: HttpRequest, scope: str = "link-card-preview") -> HttpResponse | None:
    """A 429 answer when the user asked for too many of these lately (previews, or post look-ups), else None."""
    retry_after = over_rate(scope, str(request.user.pk), *CARD_PREVIEWS_PER_WINDOW)
    if retry_after is None:
        return None
    response = JsonResponse({"error": "throttled", "retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


@login_required
@require_POST
def link_card(request: HttpRequest) -> HttpResponse:
    """The link card a part with this text will carry, for the composer's script (the page's own fetch, cached)."""
    if throttled := _throttled(request):
        return throttled
    text = request.POST.get("text", "")[: services.MAX_BYTES * 4]
    return JsonResponse(card_for(text, user_id=request.user.pk).as_json())


@login_required
@require_POST
@on_users_clock
def post_reference(request: HttpRequest) -> HttpResponse:
    """The post a "Reply to" or "Quote" field names, for the composer's script: its author, text and time (on the
    user's clock), read through the channel chosen (else one that can publish) as publishing will read it."""
    if throttled := _throttled(request, "post-reference"):
        return throttled
    wanted = request.POST.get("channel", "")
    options = channel_options(request.user, chosen=wanted)  # the chosen one, wherever it would be listed
    ready = [o.channel for o in options if o.ready]
    channel = next((c for c in ready if str(c.pk) == wanted), ready[0] if ready else None)
    address = request.POST.get("address", "").strip()[:600]
    if not address or channel is None:
        problem = _("Choose a channel that can publish first.") if address else ""
        return JsonResponse({"found": False, "problem": problem})
    target, problem = look_up_target(channel, address)
    if target is None:
        return JsonResponse({"found": False, "problem": problem})
    return JsonResponse(
        {
            "found": True,
            "handle": target.handle,
            "did": target.did,
            "text": target.text,
            "time": f"{local(target.created_at):%Y-%m-%d %H:%M}" if target.created_at else "",
            "has_images": target.has_images,
        }
    )


@login_required
def link_card_image(request: HttpRequest) -> HttpResponse:
    """A link card's thumbnail as it will be uploaded (the prepared image the card cache holds), for the link the
    composer gave this user (`?card=`, signed for them, an hour): a bare URL from anywhere else is not fetched."""
    url = thumb_link_target(request.user.pk, request.GET.get("card", ""))
    if url is None:
        raise Http404()
    if throttled := _throttled(request):
        return throttled
    found = services.fetch_card(url, user_id=request.user.pk) if url.startswith(("http://", "https://")) else None
    card = found.card if found else None
    if card is None or card.thumb is None:
        raise Http404()
    response = HttpResponse(card.thumb.data, content_type=card.thumb.mime)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response
