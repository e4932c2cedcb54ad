"""The composer's forms: the post as a whole (channel, the post it replies to or quotes, languages, its time on the
user's clock) and each part (text, image slots with alt text, link card), with the time-zone helpers of the
"Publish later" field."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from integrations.adapter import describe
from integrations.bluesky import services
from integrations.clock import zone_named
from integrations.conf import app_settings
from integrations.exceptions import EmptyPost, IntegrationError, MediaNotFound
from integrations.models import Channel, Media
from integrations.validators import parse_id
from integrations.web.compose.cards import CARD_MODES, CardView, card_for, card_link
from integrations.web.compose.channels import ChannelOption
from integrations.web.compose.preview import PartPreview, counter_text, preview

SLOTS = range(1, services.MAX_IMAGES_PER_POST + 1)  # image slots of a part, numbered as people count
TIME_FORMAT = "%Y-%m-%dT%H:%M"  # what a datetime-local field shows (seconds only when a time has them)


def _reference_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=600,
        help_text=_("A post's bsky.app address or its at:// URI."),
        widget=forms.TextInput(
            attrs={"inputmode": "url", "autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}
        ),
    )


class ComposerForm(forms.Form):
    """The post as a whole: the channel it goes to, the post it replies to or quotes (as the API's `reply_to` and
    `quote`: a bsky.app address or an at:// URI), its languages (every part gets the same) and its time."""

    REFERENCES = ("reply_to", "quote")

    channel = forms.TypedChoiceField(
        label=_("Channel"),
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose the channel to publish on.")},
    )
    reply_to = _reference_field(_("Reply to"))
    quote = _reference_field(_("Quote"))
    langs = forms.CharField(
        label=_("Languages"),
        required=False,
        max_length=100,
        help_text=_("Up to 3 language tags, separated by commas (for example: en, pt-BR)."),
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false", "size": 20}),
    )
    # A date and time as the user reads their clock (no zone), and the zone it is read in: the one the page named
    # (the user's, `integrations.clock`), so a page open across a change of zone still means what it showed.
    scheduled_at = forms.DateTimeField(
        label=_("Publish later"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    time_zone = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput(attrs={"data-time-zone": ""}))
    # One per page the composer renders: a form sent twice (a double click, a resent request) makes one post.
    submit_token = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def __init__(self, *args: Any, options: list[ChannelOption], channel: Channel | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = options
        given = self.data.get("time_zone") if self.is_bound else self.initial.get("time_zone")
        self.zone_name = given if zone_named(str(given or "")) else timezone.get_current_timezone_name()
        self.fields["scheduled_at"].help_text = _("Leave empty to publish now. Times are in %(zone)s.") % {
            "zone": self.zone_name
        }
        # Editing a scheduled post: it stays on its channel, and it keeps a time (it cannot become "now").
        self.fixed_channel = channel
        if channel is not None:
            del self.fields["channel"]
            self.fields["scheduled_at"].required = True
            self.fields["scheduled_at"].label = _("Publish at")
            self.fields["scheduled_at"].help_text = _("Times are in %(zone)s.") % {"zone": self.zone_name}
            return
        # Only channels that can publish are valid choices; the others are shown disabled with their reason.
        self.fields["channel"].choices = [(o.channel.pk, f"@{o.channel.handle}") for o in options if o.ready]
        self.fields["channel"].error_messages["invalid_choice"] = _("Choose one of your channels that can publish.")

    def clean_langs(self) -> list[str]:
        given = [tag for tag in re.split(r"[\s,;]+", self.cleaned_data["langs"]) if tag]
        try:
            return services.normalize_langs(given, None)
        except IntegrationError as exc:
            raise ValidationError(describe(exc).message) from None

    def _clean_reference(self, name: str) -> str:
        """The address as given when it is one (whether the post exists is asked of its server later)."""
        address = self.cleaned_data[name].strip()
        if address:
            try:
                services.parse_reference(address)
            except IntegrationError as exc:
                raise ValidationError(describe(exc).message) from None
        return address

    def clean_reply_to(self) -> str:
        return self._clean_reference("reply_to")

    def clean_quote(self) -> str:
        return self._clean_reference("quote")

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"]
        return name if zone_named(name) is not None else ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        when = cleaned.get("scheduled_at")
        if when is not None:
            # The field read the clock time in the active zone; it was meant in the one the page named.
            zone = zone_named(self.zone_name) or timezone.get_current_timezone()
            when = timezone.make_aware(timezone.make_naive(when), zone)
            cleaned["scheduled_at"] = when
            try:
                services.check_schedule(when)
            except IntegrationError as exc:
                self.add_error("scheduled_at", describe(exc).message)
        return cleaned

    @property
    def chosen_channel(self) -> Channel:
        if self.fixed_channel is not None:
            return self.fixed_channel
        return next(o.channel for o in self.options if o.channel.pk == self.cleaned_data["channel"])


def local_time(moment: datetime, zone_name: str = "") -> datetime:
    """`moment` on the clock of that zone (the active one, the user's on their pages, when the name is not a zone)."""
    return timezone.localtime(moment, zone_named(zone_name) or timezone.get_current_timezone())


def time_value(moment: datetime, zone_name: str = "") -> str:
    """`moment` as the "Publish later" field holds it on that zone's clock (with seconds only when it has any)."""
    local = local_time(moment, zone_name)
    return f"{local:{TIME_FORMAT}:%S}" if local.second else f"{local:{TIME_FORMAT}}"


class PartForm(forms.Form):
    """One part of a thread: its text and up to four image slots (a new file, or an image already uploaded)."""

    text = forms.CharField(
        label=_("Text"), required=False, strip=False, widget=forms.Textarea(attrs={"rows": 5, "cols": 40})
    )
    # The link card: the user's choice (CARD_MODES), and the card as shown (its URL tells which link it is for).
    card = forms.CharField(required=False, widget=forms.HiddenInput(attrs={"data-card-mode": ""}))
    card_url = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput(attrs={"data-card-url": ""}))
    card_title = forms.CharField(
        label=_("Card title"),
        required=False,
        max_length=services.MAX_TITLE,
        widget=forms.TextInput(attrs={"data-card-title": ""}),
    )
    card_description = forms.CharField(
        label=_("Card description"),
        required=False,
        max_length=services.MAX_DESCRIPTION,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40, "data-card-description": ""}),
    )

    def __init__(self, *args: Any, user: AbstractBaseUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        for slot in SLOTS:
            self.fields[f"image_{slot}"] = forms.FileField(
                label=_("Image %(number)s") % {"number": slot},
                required=False,
                widget=forms.FileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}),
            )
            # An upload's id, checked in `clean` (a value that names none of the user's uploads is said in words).
            self.fields[f"media_{slot}"] = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
            # The first frame of an animated upload, kept while its author chooses (post it, or another image).
            self.fields[f"pending_{slot}"] = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
            self.fields[f"alt_{slot}"] = forms.CharField(
                label=_("Alt text for image %(number)s") % {"number": slot},
                required=False,
                max_length=services.MAX_ALT_TEXT + 100,  # the exact limit is checked below, in words
                widget=forms.Textarea(attrs={"rows": 2, "cols": 30}),
            )
            self.fields[f"remove_{slot}"] = forms.BooleanField(
                label=_("Remove image %(number)s") % {"number": slot}, required=False
            )
        self.quoting = False  # the first part of a post that quotes another: the quote takes the card's place
        self._media, self._pending = self._load_media("media"), self._load_media("pending")

    def _load_media(self, kind: str) -> dict[int, Media]:
        """The uploads the bound data names (`media_N` or `pending_N`), each checked to belong to the user (others'
        ids are ignored)."""
        if not self.is_bound:
            return {}
        ids = {}
        for slot in SLOTS:
            media_id = parse_id(self.data.get(self.add_prefix(f"{kind}_{slot}")))
            if media_id is not None:
                ids[slot] = media_id
        found = {m.pk: m for m in Media.objects.filter(pk__in=ids.values(), owner=self.user)}
        return {slot: found[pk] for slot, pk in ids.items() if pk in found}

    def slots(self) -> list[dict[str, Any]]:
        """Each image slot for the template: its fields, the stored image it holds, if any, and the first frame of
        an animated upload waiting for its author's choice."""
        return [
            {
                "number": slot,
                "media": self._media.get(slot),
                "pending": None if slot in self._media else self._pending.get(slot),
                "image": self[f"image_{slot}"],
                "media_field": self[f"media_{slot}"],
                "pending_field": self[f"pending_{slot}"],
                "alt": self[f"alt_{slot}"],
                "remove": self[f"remove_{slot}"],
                "alt_required": app_settings.POST_ALT_TEXT_REQUIRED,
            }
            for slot in SLOTS
        ]

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        try:
            length = services.measure(text)
        except IntegrationError as exc:
            raise ValidationError(describe(exc).message) from None
        if not length.fits:
            raise ValidationError(describe(services.PostTooLong(length)).message)
        return text

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        attached = []
        for slot in SLOTS:
            if slot in self._pending and slot not in self._media:
                self.add_error(f"image_{slot}", describe(services.AnimatedImage()).message)
            if not cleaned.get(f"media_{slot}") or cleaned.get(f"remove_{slot}"):
                continue
            media = self._media.get(slot)
            if media is None:
                self.add_error(f"image_{slot}", describe(MediaNotFound()).message)
                continue
            try:
                alt = services.check_alt(cleaned.get(f"alt_{slot}"), required=app_settings.POST_ALT_TEXT_REQUIRED)
            except IntegrationError as exc:
                self.add_error(f"alt_{slot}", describe(exc).message)
                continue
            attached.append(services.ImageRequest(media.pk, alt))
        cleaned["images"] = attached
        if "text" in cleaned and not cleaned["text"].strip() and not attached and not self.errors:
            self.add_error("text", describe(EmptyPost()).message)
        if not self.errors:
            cleaned["link_card"] = self._link_card(cleaned)
        return cleaned

    def clean_card(self) -> str:
        mode = self.cleaned_data["card"]
        return mode if mode in CARD_MODES else "auto"

    def _link_card(self, cleaned: dict[str, Any]) -> str | dict[str, str] | None:
        """The user's choice as `services.PartRequest.link_card` takes it. An edited card belongs to its link: once
        the text links elsewhere, the new link's card is the page's again."""
        mode = cleaned.get("card") or "auto"
        if mode == "none":
            return None
        url = cleaned.get("card_url", "")
        if not url or url != card_link(cleaned.get("text", "")):
            return "auto"
        edited = {"url": url, "title": cleaned["card_title"], "description": cleaned["card_description"]}
        if mode == "edited":
            return edited
        # Without the page's script nothing marks an edit: the words differ from the page's (cached) own.
        page = services.fetch_card(url, user_id=self.user.pk).card
        if page is not None and (page.title, page.description) != (edited["title"], edited["description"]):
            return edited
        return "auto"

    def request(self, langs: list[str]) -> services.PartRequest:
        return services.PartRequest(
            text=self.cleaned_data["text"],
            images=tuple(self.cleaned_data["images"]),
            langs=tuple(langs),
            link_card=self.cleaned_data.get("link_card", "auto"),
        )

    def card_view(self) -> CardView:
        """The link card this part will carry, as the page shows it (with the user's words, once edited)."""
        if not self.is_bound:
            return card_for("")

        def field(name: str) -> str | None:
            found = self.data.get(self.add_prefix(name))
            return None if found is None else str(found)

        mode = field("card") or "auto"
        return card_for(
            field("text") or "",
            user_id=self.user.pk,
            covered=bool(self.attached_media()) or self.quoting,
            mode=mode if mode in CARD_MODES else "auto",
            url=field("card_url") or "",
            title=field("card_title"),
            description=field("card_description"),
        )

    def preview(self) -> PartPreview | None:
        """The part as it will be sent, when its text can be measured at all."""
        text = self.data.get(self.add_prefix("text"), "") if self.is_bound else ""
        try:
            return preview(text, self.attached_media())
        except IntegrationError:
            return None

    def attached_media(self) -> list[tuple[Media, str]]:
        """The stored images this part keeps, with their alt text as written."""
        kept = []
        for slot, media in self._media.items():
            if self.data.get(self.add_prefix(f"remove_{slot}")):
                continue
            kept.append((media, str(self.data.get(self.add_prefix(f"alt_{slot}"), "")).strip()))
        return kept

    def length(self) -> services.TextLength:
        """The text's length as it will be sent (0 for a new part or text that cannot be sent)."""
        try:
            return services.measure(self.data.get(self.add_prefix("text"), "") if self.is_bound else "")
        except IntegrationError:
            return services.TextLength(0, 0)

    def counter(self) -> str:
        return counter_text(self.length())


class BasePartFormSet(forms.BaseFormSet):
    """A thread's parts, as many as a thread may have."""

    def clean(self) -> None:
        if any(self.errors):
            return
        if not 1 <= self.total_form_count() <= app_settings.POST_MAX_PARTS:
            raise ValidationError(_("A thread has between 1 and %(max)s parts.") % {"max": app_settings.POST_MAX_PARTS})


def part_formset(*, max_parts: int | None = None) -> type[forms.BaseFormSet]:
    """The formset class of a thread's parts: 1 to `max_parts` (`INTEGRATIONS_POST_MAX_PARTS`) of `PartForm`."""
    max_parts = max_parts or app_settings.POST_MAX_PARTS
    return forms.formset_factory(
        PartForm,
        formset=BasePartFormSet,
        extra=0,
        min_num=1,
        max_num=max_parts,
        absolute_max=max_parts,
        validate_min=False,  # an empty part says so itself ("Write something or add an image.")
        validate_max=True,
    )
