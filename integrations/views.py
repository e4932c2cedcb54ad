"""Channel and post pages for signed-in users. Thin: the work happens in `integrations.bluesky.services`,
`publishing` and (for the composer's forms and preview) `composer`."""

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from integrations.adapter import describe
from integrations.bluesky import composer, publishing, richtext, services
from integrations.bluesky import options as bluesky_options
from integrations.bluesky.forms import ConnectBlueskyForm
from integrations.bluesky.plans import web_url
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError, PostNotScheduled
from integrations.http import client_ip
from integrations.models import Channel, Media, Post
from integrations.throttling import over_rate
from integrations.validators import parse_id

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
            "publish_states": publishing.READY_STATES,
        },
    )


@login_required
def channel_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One channel: profile, session times, health, its recent posts and its event log."""
    channel = get_object_or_404(Channel.objects.without_tokens(), pk=pk, user=request.user)
    health = services.health(channel)
    context = {
        "channel": channel,
        "health": health,
        "events": services.recent_events(channel),
        "can_publish": bluesky_options.enabled() and health.state in publishing.READY_STATES,
    }
    context.update(_schedule_of(request, channel))
    context.update(_feed(request, channel))
    return render(request, "integrations/channel_detail.html", context)


TIME_ZONE_KEY = "integrations_time_zone"


def _zone_name(request: HttpRequest) -> str:
    """The time zone the user's browser last reported through the composer ("" before it ever did)."""
    return str(request.session.get(TIME_ZONE_KEY, ""))


def _schedule_of(request: HttpRequest, channel: Channel) -> dict[str, Any]:
    """The channel's next scheduled post (its time on the user's clock), and the scheduled posts that fell due
    but wait for the channel (or the integration) to be able to publish."""
    zone = _zone_name(request)
    upcoming = channel.posts.filter(status=Post.Status.SCHEDULED).order_by("scheduled_at", "pk")
    next_post = upcoming.prefetch_related("parts").first()
    held = channel.posts.filter(status=Post.Status.WAITING, scheduled_at__isnull=False).order_by("scheduled_at")
    return {
        "next_scheduled": next_post,
        "next_scheduled_at": composer.local_time(next_post.scheduled_at, zone) if next_post else None,
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


# --- posts -------------------------------------------------------------------------------------------------------
POSTS_PER_PAGE = 20


@method_decorator(login_required, name="dispatch")
class ComposeView(View):
    """Write a post or a thread and publish it. Works without JavaScript: "Preview", "Add part", "Remove part" and
    the link card's "Remove card" are submit buttons that re-render the form (the page's script does them in place)."""

    template_name = "integrations/compose.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        options = composer.channel_options(request.user)
        ready = [o.channel.pk for o in options if o.ready]
        wanted = parse_id(request.GET.get("channel", ""))
        chosen = wanted if wanted in ready else (ready[0] if len(ready) == 1 else None)
        initial = {"channel": chosen, "langs": richtext.default_lang(getattr(request, "LANGUAGE_CODE", None))}
        initial["time_zone"] = _zone_name(request)
        initial["submit_token"] = composer.new_submit_token(request.user)
        form = composer.ComposerForm(initial=initial, options=options)
        parts = composer.part_formset()(prefix="parts", form_kwargs={"user": request.user})
        return self._render(request, form, parts)

    def post(self, request: HttpRequest) -> HttpResponse:
        draft = composer.Draft(request.user, request.POST, request.FILES, composer.channel_options(request.user))
        return self._submit(request, draft)

    def _submit(self, request: HttpRequest, draft: composer.Draft) -> HttpResponse:
        valid = draft.checked and draft.is_valid()
        if valid and draft.form.cleaned_data.get("time_zone"):
            request.session[TIME_ZONE_KEY] = draft.form.cleaned_data["time_zone"]
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
                    draft.form.add_error(None, describe(exc).message)
            draft.data["submit_token"] = composer.new_submit_token(request.user)  # the next try needs its own
        status = 400 if draft.checked and not (valid and draft.action == "preview") else 200
        return self._render(request, draft.form, draft.parts, preview=draft.checked, status=status)

    def _save(self, request: HttpRequest, draft: composer.Draft) -> HttpResponse:
        post = publishing.accept(
            request.user,
            draft.form.chosen_channel,
            draft.requests(),
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
            _tell_outcome(request, publishing.publish(post.pk, claimed=post))
        return redirect("integrations:post-list")

    def _render(
        self,
        request: HttpRequest,
        form: composer.ComposerForm,
        parts: composer.forms.BaseFormSet,
        *,
        preview: bool = False,
        status: int = 200,
        editing: Post | None = None,
    ) -> HttpResponse:
        context = {
            "form": form,
            "parts": parts,
            "preview": preview,
            "editing": editing,
            "bluesky_enabled": bluesky_options.enabled(),
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
    stays on its channel. Saved through `publishing.edit`, which refuses a post a worker has started meanwhile."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:  # type: ignore[override]
        post = _own_post(request, pk)
        if not composer.editable(post):
            messages.error(request, describe(PostNotScheduled()).message)
            return redirect("integrations:post-list")
        draft = composer.Draft.for_post(post, composer.channel_options(request.user), _zone_name(request))
        return self._render(request, draft.form, draft.parts, editing=post)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:  # type: ignore[override]
        post = _own_post(request, pk)
        options = composer.channel_options(request.user)
        self.post_object = post
        draft = composer.Draft(request.user, request.POST, request.FILES, options, channel=post.channel)
        return self._submit(request, draft)

    def _save(self, request: HttpRequest, draft: composer.Draft) -> HttpResponse:
        post = self.post_object
        when = draft.form.cleaned_data["scheduled_at"]
        zone = draft.form.cleaned_data.get("time_zone", "")
        # The field shows minutes (seconds when the time has them): unchanged, the stored time is kept exactly.
        if post.scheduled_at and composer.time_value(when, zone) == composer.time_value(post.scheduled_at, zone):
            when = None
        edited = publishing.edit(
            post,
            draft.requests(),
            scheduled_at=when,
            reply_to=post.reply_to_uri,
            quote=post.quote_uri,
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


def _when(request: HttpRequest, post: Post) -> str:
    when = composer.local_time(post.scheduled_at, _zone_name(request))
    return f"{when:%Y-%m-%d %H:%M} {when.tzname()}"


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
    return JsonResponse(composer.card_for(text, user=request.user).as_json())


@login_required
def link_card_image(request: HttpRequest) -> HttpResponse:
    """A link card's thumbnail as it will be uploaded (the prepared image the card cache holds), for the link the
    composer gave this user (`?card=`, signed for them, an hour): a bare URL from anywhere else is not fetched."""
    url = composer.thumb_link_target(request.user, request.GET.get("card", ""))
    if url is None:
        raise Http404()
    if throttled := _card_preview_throttled(request):
        return throttled
    card = composer.linkcards.fetch_card(url).card if url.startswith(("http://", "https://")) else None
    if card is None or card.thumb is None:
        raise Http404()
    response = HttpResponse(card.thumb.data, content_type=card.thumb.mime)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


def _tell_outcome(request: HttpRequest, outcome: publishing.Outcome) -> None:
    post = outcome.post
    handle = post.channel.handle
    if post.status == Post.Status.PUBLISHED:
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


@login_required
def post_list(request: HttpRequest) -> HttpResponse:
    """The user's posts, newest first, with their status, their bsky.app links, and what can be done with each."""
    posts = Post.objects.filter(user=request.user).select_related("channel").prefetch_related("parts")
    scheduled = posts.filter(status=Post.Status.SCHEDULED).order_by("scheduled_at", "pk")
    page = Paginator(posts.exclude(status=Post.Status.SCHEDULED), POSTS_PER_PAGE).get_page(request.GET.get("page"))
    healths: dict[int, services.Health] = {}
    rows = []
    for post in page:
        if post.channel_id not in healths:
            healths[post.channel_id] = services.health(post.channel)
        parts = [(part, web_url(part.uri)) for part in post.parts.all()]
        rows.append({"post": post, "parts": parts, "health": healths[post.channel_id]})
    days = _by_day(scheduled, _zone_name(request)) if page.number == 1 else []
    return render(request, "integrations/post_list.html", {"rows": rows, "page": page, "scheduled_days": days})


def _by_day(posts: Any, zone: str) -> list[dict[str, Any]]:
    """Scheduled posts grouped by their day on the user's clock, soonest first: [{day, posts: [(post, time)]}]."""
    days: list[dict[str, Any]] = []
    for post in posts:
        when = composer.local_time(post.scheduled_at, zone)
        if not days or days[-1]["day"] != when.date():
            days.append({"day": when.date(), "zone": when.tzname(), "posts": []})
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
        outcome = publishing.publish(post.pk, retry=True)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        _tell_outcome(request, outcome)
    return redirect("integrations:post-list")


@login_required
@require_POST
def post_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a post, from Bluesky first when any of it may have been published."""
    post = _own_post(request, pk)
    try:
        publishing.delete(post)
    except IntegrationError as exc:
        messages.error(request, describe(exc).message)
    else:
        messages.success(request, _("Deleted the post."))
    return redirect("integrations:post-list")


@login_required
def media_file(request: HttpRequest, pk: int) -> FileResponse:
    """An uploaded image, to its owner only (uploads are private: never served from a public URL)."""
    media = get_object_or_404(Media, pk=pk, owner=request.user)
    response = FileResponse(media.file.open("rb"), content_type=media.mime)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response
