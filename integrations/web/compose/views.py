"""The composer's pages: write a post or a thread (`/app/posts/new`), edit a scheduled one, and the channel search
of the picker. The post is sent by `services.submit_post` (or changed by `services.edit_post`), as the API sends
it."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View

from integrations.adapter import describe
from integrations.bluesky import services
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError, PostNotScheduled
from integrations.models import Post
from integrations.web.clock import on_users_clock
from integrations.web.common import own_post, scheduled_time, switched_off
from integrations.web.compose.channels import ChannelOptions, channel_options, last_used_channel, preselected_channel
from integrations.web.compose.draft import Draft, editable, thread_preview
from integrations.web.compose.forms import ComposerForm, part_formset, time_value
from integrations.web.compose.preview import (
    BYTES_SHOWN_FROM,
    ThreadPreview,
    look_up_target,
    script_words,
)
from integrations.web.compose.submit_tokens import new_submit_token, spend_submit_token
from integrations.web.posts import tell_outcome


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
        listed = wanted if wanted.isdigit() else last_used_channel(request.user)
        options = channel_options(request.user, chosen=listed)
        chosen = preselected_channel(request.user, options, wanted)
        initial = {"channel": chosen, "langs": services.post_language(request)}
        initial["time_zone"] = request.clock.name
        initial["submit_token"] = new_submit_token(request.user)
        channel = next((o.channel for o in options if o.channel.pk == chosen), None)
        targets, notes = {}, {}
        for name in ComposerForm.REFERENCES:
            address = request.GET.get(name, "").strip()[:600]
            if address:
                initial[name] = address
                targets[name], notes[name] = look_up_target(channel, address)
        form = ComposerForm(initial=initial, options=options)
        parts = part_formset()(prefix="parts", form_kwargs={"user": request.user})
        if parts.forms and initial.get("quote"):
            parts.forms[0].quoting = True
        return self._render(request, form, parts, targets=targets, target_notes=notes)

    def post(self, request: HttpRequest) -> HttpResponse:
        options = channel_options(
            request.user, query=request.POST.get("channel_query", ""), chosen=request.POST.get("channel")
        )
        draft = Draft(request.user, request.POST, request.FILES, options)
        return self._submit(request, draft)

    def _submit(self, request: HttpRequest, draft: Draft) -> HttpResponse:
        valid = draft.checked and draft.is_valid()
        retry_after = None
        if valid and draft.action == "publish":
            first = spend_submit_token(request.user, draft.form.cleaned_data.get("submit_token", ""))
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
            draft.data["submit_token"] = new_submit_token(request.user)  # the next try needs its own
        status = 400 if draft.checked and not (valid and draft.action == "preview") else 200
        thread = thread_preview(draft) if draft.checked else None
        response = self._render(request, draft.form, draft.parts, thread=thread, targets=draft.targets, status=status)
        if retry_after:  # too many posts lately: the form says when, and so does the answer
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response

    def _save(self, request: HttpRequest, draft: Draft) -> HttpResponse:
        outcome = services.submit_post(
            request.user,
            draft.form.chosen_channel,
            draft.requests(),
            reply_to=draft.form.cleaned_data["reply_to"],
            quote=draft.form.cleaned_data["quote"],
            default_lang=services.post_language(request),
            scheduled_at=draft.form.cleaned_data.get("scheduled_at"),
        )
        post = outcome.post
        if post.status == Post.Status.SCHEDULED:
            messages.success(
                request,
                _("Scheduled on @%(handle)s for %(when)s.")
                % {"handle": post.channel.handle, "when": scheduled_time(post)},
            )
        else:
            tell_outcome(request, outcome)
        return redirect("integrations:post-list")

    def _render(
        self,
        request: HttpRequest,
        form: ComposerForm,
        parts: forms.BaseFormSet,
        *,
        thread: ThreadPreview | None = None,
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
            "alt_required": app_settings.POST_ALT_TEXT_REQUIRED,
            "switched_off": switched_off(),
            "link_cards": app_settings.LINK_CARDS,
            "max_graphemes": services.MAX_GRAPHEMES,
            "max_bytes": services.MAX_BYTES,
            "bytes_shown_from": BYTES_SHOWN_FROM,
            "max_images": services.MAX_IMAGES_PER_POST,
            "script_words": script_words(),
        }
        return render(request, self.template_name, context, status=status)


class EditPostView(ComposeView):
    """Change a scheduled post (its parts, time and link cards) in the composer until it starts publishing; it
    stays on its channel. Saved through `services.edit_post`, which refuses a post a worker has started meanwhile."""

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:  # type: ignore[override]
        post = own_post(request, pk)
        if not editable(post):
            messages.error(request, describe(PostNotScheduled()).message)
            return redirect("integrations:post-list")
        draft = Draft.for_post(post, ChannelOptions())  # it keeps its channel
        targets, notes = {}, {}
        for name, address in (("reply_to", post.reply_to_uri), ("quote", post.quote_uri)):
            if address:
                targets[name], notes[name] = look_up_target(post.channel, address)
        return self._render(request, draft.form, draft.parts, editing=post, targets=targets, target_notes=notes)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:  # type: ignore[override]
        post = own_post(request, pk)
        self.post_object = post
        draft = Draft(request.user, request.POST, request.FILES, ChannelOptions(), channel=post.channel)
        return self._submit(request, draft)

    def _save(self, request: HttpRequest, draft: Draft) -> HttpResponse:
        post = self.post_object
        when = draft.form.cleaned_data["scheduled_at"]
        zone = draft.form.zone_name
        # The field shows minutes (seconds when the time has them): unchanged, the stored time is kept exactly.
        if post.scheduled_at and time_value(when, zone) == time_value(post.scheduled_at, zone):
            when = None
        # A form without the fields (a page from before they existed) keeps the targets as they are.
        fields = {
            name: draft.form.cleaned_data[name] if name in request.POST else None for name in ("reply_to", "quote")
        }
        edited = services.edit_post(
            post,
            draft.requests(),
            scheduled_at=when,
            reply_to=post.reply_to_uri if fields["reply_to"] is None else fields["reply_to"],
            quote=post.quote_uri if fields["quote"] is None else fields["quote"],
            default_lang=services.post_language(request),
        )
        messages.success(
            request,
            _("Saved the post scheduled on @%(handle)s for %(when)s.")
            % {"handle": edited.channel.handle, "when": scheduled_time(edited)},
        )
        return redirect("integrations:post-list")

    def _render(self, request: HttpRequest, form: ComposerForm, parts: Any, **kwargs: Any) -> HttpResponse:
        kwargs.setdefault("editing", getattr(self, "post_object", None))
        return super()._render(request, form, parts, **kwargs)


@login_required
def compose_channels(request: HttpRequest) -> HttpResponse:
    """The composer's channel choices matching `?q=` (with `?chosen=` kept among them), for the page's script: the
    same markup the page renders, so a search changes the list in place."""
    options = channel_options(request.user, query=request.GET.get("q", ""), chosen=request.GET.get("chosen"))
    context = {"options": options, "field_name": "channel", "value": request.GET.get("chosen", "")}
    return render(request, "integrations/_channel_choices.html", context)
