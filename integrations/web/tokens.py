"""The API token page: a user's token (when it was created, never its key), creating it, and revoking or
regenerating it once confirmed. A key is shown in the one response that made it (never by a redirect, a message or
the session), and no page of them is cached."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import tokens
from integrations.clock import shown
from integrations.web.clock import on_users_clock
from integrations.web.common import confirm_page, confirmed


def _token_page(request: HttpRequest, new_key: str = "") -> HttpResponse:
    try:
        channels_api = request.build_absolute_uri(reverse("integrations-api:channel-list"))
    except NoReverseMatch:  # the host project does not include the API
        channels_api = ""
    context = {"tokens": tokens.tokens_of(request.user), "new_key": new_key, "channels_api": channels_api}
    return render(request, "integrations/api_tokens.html", context)


@never_cache
@login_required
@require_GET
@on_users_clock
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The user's API tokens (when each was created, never a key) and what can be done with them."""
    return _token_page(request)


@never_cache
@login_required
@require_POST
@on_users_clock
@sensitive_variables("key")
def api_token_create(request: HttpRequest) -> HttpResponse:
    """Create the user's API token and show its key, on this response only."""
    try:
        key = tokens.create(request.user)
    except tokens.TokenExists:
        messages.info(request, _("You have an API token already. To get a new key, regenerate it."))
        return redirect("integrations:api-tokens")
    return _token_page(request, new_key=key)


def _token_gone(request: HttpRequest) -> HttpResponse:
    messages.info(request, _("That API token was already revoked or regenerated; nothing was changed."))
    return redirect("integrations:api-tokens")


def _confirm_token(request: HttpRequest, token_id: str, **words: str) -> HttpResponse:
    """The question before changing one of the user's tokens (or, when it is gone already, saying so)."""
    token = next((token for token in tokens.tokens_of(request.user) if token.id == token_id), None)
    if token is None:
        return _token_gone(request)
    return confirm_page(
        request,
        detail=_("Created %(when)s.") % {"when": shown(token.created)},
        back_url=reverse("integrations:api-tokens"),
        back_label=_("API token"),
        **words,
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def api_token_revoke(request: HttpRequest, token_id: str) -> HttpResponse:
    """Revoke an API token, once confirmed: programs using it are refused from then on."""
    if not confirmed(request):
        return _confirm_token(
            request,
            token_id,
            title=_("Revoke your API token?"),
            question=_("Programs that use it are refused from now on. You can create a new one afterwards."),
            button=_("Revoke"),
            keep=_("Keep it"),
        )
    try:
        tokens.revoke(request.user, token_id)
    except tokens.TokenNotFound:
        return _token_gone(request)
    messages.success(request, _("Revoked your API token. Programs that used it are refused from now on."))
    return redirect("integrations:api-tokens")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
@sensitive_variables("key")
def api_token_regenerate(request: HttpRequest, token_id: str) -> HttpResponse:
    """Replace an API token with a new one, once confirmed, and show the new key on this response only."""
    if not confirmed(request):
        return _confirm_token(
            request,
            token_id,
            title=_("Regenerate your API token?"),
            question=_("The current key stops working at once: programs that use it need the new one."),
            button=_("Regenerate"),
            keep=_("Keep the current key"),
        )
    try:
        key = tokens.regenerate(request.user, token_id)
    except tokens.TokenNotFound:
        return _token_gone(request)
    return _token_page(request, new_key=key)
