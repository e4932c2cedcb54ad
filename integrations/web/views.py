"""Channel and post pages for signed-in users. Thin: the work happens in `integrations.bluesky.services`
and (for the composer's forms and preview) `composer`."""

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import pagination, tokens
from integrations.adapter import describe
from integrations.bluesky import options as bluesky_options
from integrations.bluesky import services
from integrations.bluesky.forms import ConnectBlueskyForm
from integrations.bluesky.posts import richtext
from integrations.bluesky.posts.plans import web_url
from integrations.clock import local, on_users_clock, shown
from integrations.conf import app_settings
from integrations.exceptions import (
    IntegrationDisabled,
    IntegrationError,
    InvalidCursor,
    PostNotScheduled,
    ScheduleMissed,
)
from integrations.http import client_ip
from integrations.models import Channel, Media, Post, post_history_at
from integrations.security.throttling import over_rate
from integrations.web import composer

logger = logging.getLogger(__name__)


def _own_channel(request: HttpRequest, pk: int) -> Channel:
    return get_object_or_404(Channel, pk=pk, user=request.user)


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
            "switched_off": _switched_off(),
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
        "can_publish": health.state in services.READY_STATES,
        "switched_off": _switched_off(),
    }
    context.update(_schedule_of(request, channel))
    context.update(_feed(request, channel))
    return render(request, "integrations/channel_detail.html", context)


def _switched_off() -> str:
    """What every page says while the administrator has Bluesky switched off ("" while it is on): one wording."""
    return "" if bluesky_options.enabled() else describe(IntegrationDisabled()).message


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
        page = services.channel_feed(_own_channel(request, channel.pk), cursor)
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
        context = {"form": form, "bluesky_enabled": bluesky_options.enabled(), "switched_off": _switched_off()}
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


# --- confirmations: a destructive action asks first, with or without the page's script --------------------------
def _confirmed(request: HttpRequest) -> bool:
    """Whether this request confirms its action: a POST carrying `confirm=yes` (what every confirmation form sends).

    Anything else (a GET, or a POST from an old page or another site's form without it) gets the confirmation page
    instead, so nothing is disconnected, cancelled or deleted in one click."""
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def _confirm_page(request: HttpRequest, **context: Any) -> HttpResponse:
    """The confirmation step as a page of its own: `title`, `question`, `button`, `keep` (the way back's words),
    `back_url`, `back_label`, and optionally `detail`, `quoted` (a post's text) and `next`."""
    context.setdefault("action_url", request.path)
    context.setdefault("next", request.POST.get("next", request.GET.get("next", "")))
    return render(request, "integrations/confirm.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def channel_disconnect(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke the session on the PDS (where it answers) and forget the tokens, once confirmed."""
    channel = _own_channel(request, pk)
    if not _confirmed(request):
        return _confirm_page(
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
    channel = _own_channel(request, pk)
    if not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Remove @%(handle)s?") % {"handle": channel.handle},
            question=_("The channel, its events and its posts' history here are deleted. Nothing on Bluesky changes."),
            button=_("Remove"),
            keep=_("Keep it"),
            back_url=reverse("integrations:channel-list"),
            back_label=_("Channels"),
        )
    try:
        services.remove(channel)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        messages.success(request, _("Removed @%(handle)s.") % {"handle": channel.handle})
    return redirect("integrations:channel-list")


# --- posts -------------------------------------------------------------------------------------------------------
POSTS_PER_PAGE = 20


@method_decorator(login_required, name="dispatch")
@method_decorator(on_users_clock, name="dispatch")
class ComposeView(View):
    """Write a post or a thread and publish it. Works without JavaScript: "Preview", "Add part", "Remove part" and
    the link card's "Remove card" are submit buttons that re-render the form (the page's script does them in place)."""

    template_name = "integrations/compose.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        """The empty composer; `?channel=`, `?reply_to=` and `?quote=` (the channel feed's Reply and Quote) fill
        it in, and the post replied to or quoted is shown."""
        wanted = request.GET.get("channel", "")
        # The channel asked for, else the one last used, is among the choices even when it would not be listed first.
        listed = wanted if wanted.isdigit() else composer.last_used_channel(request.user)
        options = composer.channel_options(request.user, chosen=listed)
        chosen = composer.preselected_channel(request.user, options, wanted)
        initial = {"channel": chosen, "langs": richtext.default_lang(getattr(request, "LANGUAGE_CODE", None))}
        initial["time_zone"] = request.clock.name
        initial["submit_token"] = composer.new_submit_token(request.user)
        channel = next((o.channel for o in options if o.channel.pk == chosen), None)
        targets, notes = {}, {}
        for name in composer.ComposerForm.REFERENCES:
            address = request.GET.get(name, "").strip()[:600]
            if address:
                initial[name] = address
                targets[name], notes[name] = composer.look_up_target(channel, address)
        form = composer.ComposerForm(initial=initial, options=options)
        parts = composer.part_formset()(prefix="parts", form_kwargs={"user": request.user})
        if parts.forms and initial.get("quote"):
            parts.forms[0].quoting = True
        return self._render(request, form, parts, targets=targets, target_notes=notes)

    def post(self, request: HttpRequest) -> HttpResponse:
        options = composer.channel_options(
            request.user, query=request.POST.get("channel_query", ""), chosen=request.POST.get("channel")
        )
        draft = composer.Draft(request.user, request.POST, request.FILES, options)
        return self._submit(request, draft)

    def _submit(self, request: HttpRequest, draft: composer.Draft) -> HttpResponse:
        valid = draft.checked and draft.is_valid()
        retry_after = None
        if valid and draft.action == "publish":
            first = composer.spend_submit_token(request.user, draft.form.cleaned_data.get("submit_token", ""))
            if first is False:  # the same form again (a double click, a resent request): one post is enough
                messages.info(
                    request, _("This form was sent twice: only the first one counted. Here is what became of it.")
                )
                return redirect("integrations:post-list")
            if first is None:
                draft.form.add_error(None, _("This page is out of date. Check the post and send it again."))
            else:
                try:
                    return self._save(request, draft)
                except IntegrationError as exc:
                    described = describe(exc)
                    draft.form.add_error(None, described.message)
                    retry_after = described.retry_after if described.http_status == 429 else None
            draft.data["submit_token"] = composer.new_submit_token(request.user)  # the next try needs its own
        status = 400 if draft.checked and not (valid and draft.action == "preview") else 200
        thread = composer.thread_preview(draft) if draft.checked else None
        response = self._render(request, draft.form, draft.parts, thread=thread, targets=draft.targets, status=status)
        if retry_after:  # too many posts lately: the form says when, and so does the answer
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response

    def _save(self, request: HttpRequest, draft: composer.Draft) -> HttpResponse:
        post = services.accept(
            request.user,
            draft.form.chosen_channel,
            draft.requests(),
            reply_to=draft.form.cleaned_data["reply_to"],
            quote=draft.form.cleaned_data["quote"],
            default_lang=richtext.default_lang(getattr(request, "LANGUAGE_CODE", None)),
            scheduled_at=draft.form.cleaned_data.get("scheduled_at"),
        )
        if post.status == Post.Status.SCHEDULED:
            messages.success(
                request,
                _("Scheduled on @%(handle)s for %(when)s.")
                % {"handle": post.channel.handle, "when": _when(request, post)},
            )
        else:
            _tell_outcome(request, services.publish(post.pk, claimed=post))
        return redirect("integrations:post-list")

    def _render(
        self,
        request: HttpRequest,
        form: composer.ComposerForm,
        parts: composer.forms.BaseFormSet,
        *,
        thread: composer.ThreadPreview | None = None,
        targets: dict[str, Any] | None = None,
        target_notes: dict[str, str] | None = None,
        status: int = 200,
        editing: Post | None = None,
    ) -> HttpResponse:
        context = {
            "form": form,
            "parts": parts,
            "action_url": request.path,
            "thread": thread,
            "targets": targets or {},
            "target_notes": target_notes or {},
            "editing": editing,
            "alt_required": bool(app_settings.POST_ALT_TEXT_REQUIRED),
            "switched_off": _switched_off(),
            "link_cards": bool(app_settings.LINK_CARDS),
            "max_graphemes": richtext.MAX_GRAPHEMES,
            "max_bytes": richtext.MAX_BYTES,
            "bytes_shown_from": composer.BYTES_SHOWN_FROM,
            "max_images": composer.images.MAX_IMAGES_PER_POST,
            "script_words": composer.script_words(),
        }
        return render(request, self.template_name, context, status=status)


class EditPostView(ComposeView):
    """Change a scheduled post (its parts, time and link cards) in the composer until it starts publishing; it
    stays on its channel. Saved through `services.edit`, which refuses a post a worker has started meanwhile."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:  # type: ignore[override]
        post = _own_post(request, pk)
        if not composer.editable(post):
            messages.error(request, describe(PostNotScheduled()).message)
            return redirect("integrations:post-list")
        draft = composer.Draft.for_post(post, composer.ChannelOptions())  # it keeps its channel
        targets, notes = {}, {}
        for name, address in (("reply_to", post.reply_to_uri), ("quote", post.quote_uri)):
            if address:
                targets[name], notes[name] = composer.look_up_target(post.channel, address)
        return self._render(request, draft.form, draft.parts, editing=post, targets=targets, target_notes=notes)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:  # type: ignore[override]
        post = _own_post(request, pk)
        self.post_object = post
        draft = composer.Draft(
            request.user, request.POST, request.FILES, composer.ChannelOptions(), channel=post.channel
        )
        return self._submit(request, draft)

    def _save(self, request: HttpRequest, draft: composer.Draft) -> HttpResponse:
        post = self.post_object
        when = draft.form.cleaned_data["scheduled_at"]
        zone = draft.form.zone_name
        # The field shows minutes (seconds when the time has them): unchanged, the stored time is kept exactly.
        if post.scheduled_at and composer.time_value(when, zone) == composer.time_value(post.scheduled_at, zone):
            when = None
        # A form without the fields (a page from before they existed) keeps the targets as they are.
        fields = {
            name: draft.form.cleaned_data[name] if name in request.POST else None for name in ("reply_to", "quote")
        }
        edited = services.edit(
            post,
            draft.requests(),
            scheduled_at=when,
            reply_to=post.reply_to_uri if fields["reply_to"] is None else fields["reply_to"],
            quote=post.quote_uri if fields["quote"] is None else fields["quote"],
            default_lang=richtext.default_lang(getattr(request, "LANGUAGE_CODE", None)),
        )
        messages.success(
            request,
            _("Saved the post scheduled on @%(handle)s for %(when)s.")
            % {"handle": edited.channel.handle, "when": _when(request, edited)},
        )
        return redirect("integrations:post-list")

    def _render(self, request: HttpRequest, form: composer.ComposerForm, parts: Any, **kwargs: Any) -> HttpResponse:
        kwargs.setdefault("editing", getattr(self, "post_object", None))
        return super()._render(request, form, parts, **kwargs)


@login_required
def compose_channels(request: HttpRequest) -> HttpResponse:
    """The composer's channel choices matching `?q=` (with `?chosen=` kept among them), for the page's script: the
    same markup the page renders, so a search changes the list in place."""
    options = composer.channel_options(request.user, query=request.GET.get("q", ""), chosen=request.GET.get("chosen"))
    context = {"options": options, "field_name": "channel", "value": request.GET.get("chosen", "")}
    return render(request, "integrations/_channel_choices.html", context)


def _when(request: HttpRequest, post: Post) -> str:
    """A scheduled post's time for a message, on the user's clock (which the page names)."""
    return f"{local(post.scheduled_at):%Y-%m-%d %H:%M}"


# Card previews make the server fetch pages: a user may ask for this many per window (typing pauses, not pages).
CARD_PREVIEWS_PER_WINDOW = (120, 300)


def _card_preview_throttled(request: HttpRequest) -> HttpResponse | None:
    """A 429 answer when the user asked for too many card previews lately, else None."""
    retry_after = over_rate("link-card-preview", str(request.user.pk), *CARD_PREVIEWS_PER_WINDOW)
    if retry_after is None:
        return None
    response = JsonResponse({"error": "throttled", "retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


@login_required
@require_POST
def link_card(request: HttpRequest) -> HttpResponse:
    """The link card a part with this text will carry, for the composer's script (the page's own fetch, cached)."""
    if throttled := _card_preview_throttled(request):
        return throttled
    text = request.POST.get("text", "")[: richtext.MAX_BYTES * 4]
    return JsonResponse(composer.card_for(text, user_id=request.user.pk).as_json())


@login_required
@require_POST
@on_users_clock
def post_reference(request: HttpRequest) -> HttpResponse:
    """The post a "Reply to" or "Quote" field names, for the composer's script: its author, text and time (on the
    user's clock), read through the channel chosen (else one that can publish) as publishing will read it."""
    retry_after = over_rate("post-reference", str(request.user.pk), *CARD_PREVIEWS_PER_WINDOW)
    if retry_after is not None:
        response = JsonResponse({"error": "throttled", "retry_after": retry_after}, status=429)
        response["Retry-After"] = str(retry_after)
        return response
    wanted = request.POST.get("channel", "")
    options = composer.channel_options(request.user, chosen=wanted)  # the chosen one, wherever it would be listed
    ready = [o.channel for o in options if o.ready]
    channel = next((c for c in ready if str(c.pk) == wanted), ready[0] if ready else None)
    address = request.POST.get("address", "").strip()[:600]
    if not address or channel is None:
        problem = _("Choose a channel that can publish first.") if address else ""
        return JsonResponse({"found": False, "problem": problem})
    target, problem = composer.look_up_target(channel, address)
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
    url = composer.thumb_link_target(request.user.pk, request.GET.get("card", ""))
    if url is None:
        raise Http404()
    if throttled := _card_preview_throttled(request):
        return throttled
    found = (
        composer.linkcards.fetch_card(url, user_id=request.user.pk) if url.startswith(("http://", "https://")) else None
    )
    card = found.card if found else None
    if card is None or card.thumb is None:
        raise Http404()
    response = HttpResponse(card.thumb.data, content_type=card.thumb.mime)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


def _tell_outcome(request: HttpRequest, outcome: services.Outcome) -> None:
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


SCHEDULED_PER_PAGE = 20


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
    healths: dict[int, services.Health] = {}
    rows = []
    for post in history.items if history else ():
        if post.channel_id not in healths:
            healths[post.channel_id] = services.health(post.channel)
        parts = [(part, web_url(part.uri)) for part in post.parts.all()]
        reason = post.error_message
        if post.error_code == ScheduleMissed.code and post.scheduled_at:  # its time, said on this page's clock
            reason = describe(ScheduleMissed(shown(post.scheduled_at))).message
        rows.append({"post": post, "parts": parts, "health": healths[post.channel_id], "reason": reason})
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
        "switched_off": _switched_off(),
    }
    return render(request, "integrations/post_list.html", context)


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


def _own_post(request: HttpRequest, pk: int) -> Post:
    return get_object_or_404(Post.objects.select_related("channel"), pk=pk, user=request.user)


@login_required
@require_POST
def post_publish(request: HttpRequest, pk: int) -> HttpResponse:
    """Publish a failed or waiting post again: the same plan, so nothing is ever posted twice."""
    post = _own_post(request, pk)
    try:
        outcome = services.publish(post.pk, retry=True)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        _tell_outcome(request, outcome)
    return redirect("integrations:post-list")


@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def post_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a scheduled post, once confirmed: it is not published and stays in the history as cancelled."""
    post = _own_post(request, pk)
    if post.status == Post.Status.SCHEDULED and not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Cancel the post scheduled for %(when)s?") % {"when": _when(request, post)},
            question=_("It is not published, and stays in your history as cancelled."),
            quoted=_first_text(post),
            button=_("Cancel the post"),
            keep=_("Keep it scheduled"),
            back_url=reverse("integrations:post-list"),
            back_label=_("Posts"),
        )
    try:
        services.cancel(post)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        messages.success(
            request,
            _("Cancelled the post scheduled on @%(handle)s for %(when)s.")
            % {"handle": post.channel.handle, "when": _when(request, post)},
        )
    return redirect("integrations:post-list")


@login_required
@require_http_methods(["GET", "POST"])
@on_users_clock
def post_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a post, once confirmed: from Bluesky first when any of it may have been published."""
    post = _own_post(request, pk)
    if not _confirmed(request):
        parts = post.parts.count()
        return _confirm_page(
            request,
            title=render_to_string("integrations/_delete_question.html", {"post": post, "parts": parts}).strip(),
            question=_("What reached Bluesky is deleted there too.") if post.attempts else "",
            quoted=_first_text(post),
            button=_("Delete"),
            keep=_("Keep it"),
            back_url=reverse("integrations:post-list"),
            back_label=_("Posts"),
        )
    try:
        services.delete_post(post)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        messages.success(request, _("Deleted the post."))
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


# --- API tokens: a key is shown in the one response that made it (never by a redirect, a message or the session),
# and no page of them is cached -------------------------------------------------------------------------------------
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
    return _confirm_page(
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
    if not _confirmed(request):
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
    if not _confirmed(request):
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
