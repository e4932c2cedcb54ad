"""The web composer's forms and preview: what `/app/posts/new` needs beyond `services` and `richtext`.

A draft is one submission of the composer. Its parts use Django's formset naming (`parts-0-text`, `parts-0-image_1`,
`parts-TOTAL_FORMS`), so the page works without JavaScript: "Add part", "Remove part" and "Preview" are submit
buttons that re-render the form. Images uploaded with any submission are stored at once with
`services.store_media` (all of them, or none when one is refused) and carried on as hidden media ids, so nobody
picks a file twice; the preview shows them through the owner-only media view.

A part with a link (and no images) shows the link card it will carry, read by `linkcards.fetch_card` (cached), with
its title and description editable and "Remove card". The choice travels as `parts-N-card` ("auto", "edited" or
"none") with the card's URL, title and description, and becomes the `link_card` of `services.PartRequest`, as the
API's: "auto", `{"url", "title", "description"}` or None. The page's script asks `card_for` for the card while the
user types; without it, the card is shown by Preview (an edit is noticed by comparing with the page's own words).

`post_data` turns a scheduled post back into the fields of this form, for editing it (`services.edit`).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Case, Q, When
from django.forms.utils import ErrorDict
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from integrations.adapter import describe
from integrations.bluesky import services
from integrations.bluesky.accounts.health import Health, health
from integrations.bluesky.posts import images, linkcards, references, richtext
from integrations.bluesky.words import mid_sentence
from integrations.clock import zone_named
from integrations.conf import app_settings
from integrations.exceptions import EmptyPost, IntegrationError, MediaNotFound
from integrations.models import Channel, Media, Post
from integrations.security.throttling import first_use
from integrations.validators import parse_id, parse_number

SLOTS = range(1, images.MAX_IMAGES_PER_POST + 1)  # image slots of a part, numbered as people count
_UPLOAD = re.compile(r"parts-([0-9]{1,4})-image_([0-9])")
_PART_KEY = re.compile(r"parts-([0-9]{1,4})-(.+)")
BYTES_SHOWN_FROM = 2700  # the byte count is shown once a text gets close to MAX_BYTES
CARD_MODES = ("auto", "edited", "none")  # a part's link card: the page's, the user's own words, or none
TIME_FORMAT = "%Y-%m-%dT%H:%M"  # what a datetime-local field shows (seconds only when a time has them)


# --- channels --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelOption:
    """A channel in the composer's picker: selectable when it can publish now, else the reason it cannot."""

    channel: Channel
    health: Health
    reason: str  # empty when the channel can publish

    @property
    def ready(self) -> bool:
        return not self.reason


# The composer lists at most this many channels; a user with more finds the others by searching.
PICKER_SIZE = 20
MAX_QUERY_LENGTH = 100


class ChannelOptions(list):
    """The channels the composer offers (`ChannelOption`s, those that can publish first), and of how many: all of
    the user's when they have at most PICKER_SIZE, else the first PICKER_SIZE matching `query` (and the chosen
    one, wherever it sorts)."""

    def __init__(self, options: Iterable[ChannelOption] = (), *, total: int = 0, query: str = "") -> None:
        super().__init__(options)
        self.total = total
        self.query = query

    @property
    def searchable(self) -> bool:
        """Whether the user has more channels than the composer lists at once (it offers a search then)."""
        return self.total > PICKER_SIZE


def channel_options(user: AbstractBaseUser, *, query: str = "", chosen: Any = None) -> ChannelOptions:
    """The user's channels for the composer's picker (see ChannelOptions): `query` is part of a handle or a display
    name; `chosen` (an id, as the form sent it) is always among them when it is one of the user's channels. While
    the administrator has the integration switched off, posts wait: that makes no channel unavailable."""
    channels = Channel.objects.filter(user=user).without_tokens()
    query = "".join(ch for ch in str(query or "") if ch.isprintable()).strip().removeprefix("@")[:MAX_QUERY_LENGTH]
    if query:
        channels_shown = channels.filter(Q(handle__icontains=query) | Q(display_name__icontains=query))
    else:
        channels_shown = channels
    # Those that can publish first: the database's guess from the stored state (the exact answer is below).
    now = timezone.now()
    likely_ready = Q(status__in=[Channel.Status.ACTIVE, Channel.Status.DEGRADED]) & (
        Q(refresh_expires_at__isnull=True) | Q(refresh_expires_at__gt=now)
    )
    first = list(
        channels_shown.order_by(Case(When(likely_ready, then=0), default=1), "handle", "pk")[: PICKER_SIZE + 1]
    )
    total = len(first) if len(first) <= PICKER_SIZE and not query else channels.count()
    found = first[:PICKER_SIZE]
    wanted = int(chosen) if str(chosen or "").isdigit() and len(str(chosen)) <= 18 else None  # an id, never an overflow
    if wanted is not None and all(channel.pk != wanted for channel in found):
        found += list(channels.filter(pk=wanted))
    options = sorted((_option(channel) for channel in found), key=lambda o: (not o.ready, o.channel.handle))
    return ChannelOptions(options, total=total, query=query)


def _option(channel: Channel) -> ChannelOption:
    state = health(channel)
    try:
        services.ensure_channel_ready(channel)
    except IntegrationError:
        reason = state.advice or f"{state.label}."  # the label is on the badge next to it
    else:
        reason = ""
    return ChannelOption(channel, state, reason)


def last_used_channel(user: AbstractBaseUser) -> int | None:
    """The channel the user last published or scheduled on, whatever it can do now (None before their first post)."""
    return Post.objects.filter(user=user).order_by("-created_at", "-pk").values_list("channel_id", flat=True).first()


# --- sending once ----------------------------------------------------------------------------------------------
SUBMIT_TOKEN_SALT = "integrations.composer.submit"
SUBMIT_TOKEN_MAX_AGE = 24 * 3600  # a composer left open overnight asks to be sent again


def new_submit_token(user: AbstractBaseUser) -> str:
    """A one-time token for a composer page, signed for this user (another user's page cannot lend theirs)."""
    value = {"user": user.pk, "nonce": secrets.token_urlsafe(16), "at": int(time.time())}
    return signing.dumps(value, salt=SUBMIT_TOKEN_SALT)


def spend_submit_token(user: AbstractBaseUser, token: str) -> bool | None:
    """Use the page's token for this submission: True the first time, False when it was used already (the same
    form sent again), None when it is not a token this server gave this user within a day. One statement in the
    database decides (the rate-limit counters: at most one use per token), so two requests at once cannot both
    win."""
    try:
        value = signing.loads(token, salt=SUBMIT_TOKEN_SALT, max_age=SUBMIT_TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("user") != user.pk or not isinstance(value.get("nonce"), str):
        return None
    issued = value.get("at") if isinstance(value.get("at"), int) else int(time.time())
    return first_use("composer-submit", value["nonce"], keep_until=issued + SUBMIT_TOKEN_MAX_AGE + 60)


def preselected_channel(user: AbstractBaseUser, options: list[ChannelOption], wanted: str = "") -> int | None:
    """The channel the composer opens with: the one asked for (a channel page's "Write a post"), else the only one
    that can publish, else the one the user last published or scheduled on, if it can publish now."""
    ready = [o.channel.pk for o in options if o.ready]
    if (chosen := parse_id(wanted)) in ready:
        return chosen
    if len(ready) <= 1:
        return ready[0] if ready else None
    last = Post.objects.filter(user=user, channel_id__in=ready).order_by("-created_at", "-pk")
    return last.values_list("channel_id", flat=True).first()


# --- forms -----------------------------------------------------------------------------------------------------
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
            return richtext.normalize_langs(given, None)
        except IntegrationError as exc:
            raise ValidationError(describe(exc).message) from None

    def _clean_reference(self, name: str) -> str:
        """The address as given when it is one (whether the post exists is asked of its server later)."""
        address = self.cleaned_data[name].strip()
        if address:
            try:
                references.parse(address)
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
        max_length=linkcards.MAX_TITLE,
        widget=forms.TextInput(attrs={"data-card-title": ""}),
    )
    card_description = forms.CharField(
        label=_("Card description"),
        required=False,
        max_length=linkcards.MAX_DESCRIPTION,
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
                max_length=images.MAX_ALT_TEXT + 100,  # the exact limit is checked below, in words
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
                "alt_required": bool(app_settings.POST_ALT_TEXT_REQUIRED),
            }
            for slot in SLOTS
        ]

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        try:
            length = richtext.measure(text)
        except IntegrationError as exc:
            raise ValidationError(describe(exc).message) from None
        if not length.fits:
            raise ValidationError(describe(richtext.PostTooLong(length)).message)
        return text

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        attached = []
        for slot in SLOTS:
            if slot in self._pending and slot not in self._media:
                self.add_error(f"image_{slot}", describe(images.AnimatedImage()).message)
            if not cleaned.get(f"media_{slot}") or cleaned.get(f"remove_{slot}"):
                continue
            media = self._media.get(slot)
            if media is None:
                self.add_error(f"image_{slot}", describe(MediaNotFound()).message)
                continue
            try:
                alt = images.check_alt(cleaned.get(f"alt_{slot}"), required=bool(app_settings.POST_ALT_TEXT_REQUIRED))
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
        if not url or url != first_link(cleaned.get("text", "")):
            return "auto"
        edited = {"url": url, "title": cleaned["card_title"], "description": cleaned["card_description"]}
        if mode == "edited":
            return edited
        # Without the page's script nothing marks an edit: the words differ from the page's (cached) own.
        page = linkcards.fetch_card(url, user_id=self.user.pk).card
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

    def length(self) -> richtext.TextLength:
        """The text's length as it will be sent (0 for a new part or text that cannot be sent)."""
        try:
            return richtext.measure(self.data.get(self.add_prefix("text"), "") if self.is_bound else "")
        except IntegrationError:
            return richtext.TextLength(0, 0)

    def counter(self) -> str:
        return counter_text(self.length())


class BasePartFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        if not 1 <= self.total_form_count() <= int(app_settings.POST_MAX_PARTS):
            raise ValidationError(_("A thread has between 1 and %(max)s parts.") % {"max": app_settings.POST_MAX_PARTS})


def part_formset(*, max_parts: int | None = None) -> type[forms.BaseFormSet]:
    max_parts = max_parts or int(app_settings.POST_MAX_PARTS)
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


# --- a submission ----------------------------------------------------------------------------------------------
class Draft:
    """One submission of the composer: its uploads stored (all or none), "Add part" / "Remove part" / "Remove card"
    / "Add the card back" / "Post the first frame" / "Choose another image" applied, and the forms bound to the
    result. `action` is "publish", "preview", "add", "remove", "nocard", "card", "frame", "noframe" or "find" (a
    search among the channels; those seven re-render what was written, unchecked), or "load" (a stored post opened
    for editing: `for_post`). `channel`: the post being edited stays on its channel.

    An animated upload is not refused with the rest: its first frame is kept aside (`pending_N`) and the part says
    so, with the two choices as buttons."""

    ACTIONS = ("publish", "preview", "add", "remove", "nocard", "card", "frame", "noframe", "find")

    def __init__(
        self,
        user: AbstractBaseUser,
        data: Mapping[str, Any],
        files: Mapping[str, Any],
        options: list[ChannelOption],
        *,
        channel: Channel | None = None,
        action: str | None = None,
    ) -> None:
        self.user = user
        self.data = data.copy()  # a QueryDict: mutable copy
        self.upload_errors: dict[tuple[int, int], str] = {}
        self.action, _, index = (action or str(data.get("action", "preview"))).partition("-")
        if self.action not in self.ACTIONS and action is None:
            self.action = "preview"
        self._store_uploads(files)
        self._drop_removed_images()
        total = self._total()
        if self.action == "add" and total < int(app_settings.POST_MAX_PARTS):
            self.data["parts-TOTAL_FORMS"] = str(total + 1)
        elif self.action == "remove" and (number := parse_number(index)) is not None and total > 1:
            self._remove_part(number, total)
        elif self.action in ("nocard", "card") and (number := parse_number(index)) is not None and number < total:
            self.data[f"parts-{index}-card"] = "none" if self.action == "nocard" else "auto"
        elif self.action in ("frame", "noframe"):
            self._choose_frame(index, keep=self.action == "frame")
        self.form = ComposerForm(self.data, options=options, channel=channel)
        self.parts = part_formset()(self.data, prefix="parts", form_kwargs={"user": user})
        if self.parts.forms:
            self.parts.forms[0].quoting = bool(str(self.data.get("quote", "")).strip())
        self.targets: dict[str, references.Target] = {}
        if not self.checked:
            self._quiet()
        for (index, slot), message in self.upload_errors.items():
            if index < len(self.parts.forms):
                self.parts.forms[index].add_error(f"image_{slot}", message)

    @classmethod
    def for_post(cls, post: Post, options: list[ChannelOption]) -> Draft:
        """A scheduled post in the composer, as it would submit it: its parts, time (on the active clock) and link
        cards."""
        data = post_data(post)
        data["submit_token"] = new_submit_token(post.user)
        return cls(post.user, data, {}, options, channel=post.channel, action="load")

    @property
    def checked(self) -> bool:
        """Whether this submission is validated: "Add part", "Remove part" and the card's buttons only re-render."""
        return self.action in ("publish", "preview")

    def _quiet(self) -> None:
        for form in [self.form, *self.parts.forms]:
            form._errors, form.cleaned_data = ErrorDict(), {}
        self.parts._errors, self.parts._non_form_errors = [], self.parts.error_class()

    def _total(self) -> int:
        value = str(self.data.get("parts-TOTAL_FORMS", "1"))
        number = parse_number(value)
        return min(number, int(app_settings.POST_MAX_PARTS)) if number is not None else 1

    def _store_uploads(self, files: Mapping[str, Any]) -> None:
        """Store every uploaded image and name it in the data; when one is refused, none of them is kept."""
        stored: list[Media] = []
        named: list[str] = []
        for key in files:
            match = _UPLOAD.fullmatch(key)
            if not match or int(match[1]) >= self._total() or int(match[2]) not in SLOTS:
                continue
            kind = "media"
            try:
                try:
                    media = services.store_media(self.user, files[key])
                except images.AnimatedImage:
                    files[key].seek(0)
                    media, kind = services.store_media(self.user, files[key], first_frame=True), "pending"
            except IntegrationError as exc:
                self.upload_errors[(int(match[1]), int(match[2]))] = describe(exc).message
                continue
            stored.append(media)
            named.append(f"parts-{match[1]}-{kind}_{match[2]}")
            self.data[named[-1]] = str(media.pk)
            self.data.pop(f"parts-{match[1]}-{'pending' if kind == 'media' else 'media'}_{match[2]}", None)
            self.data.pop(f"parts-{match[1]}-remove_{match[2]}", None)
        if self.upload_errors:
            for media in stored:
                media.discard()
            for key in named:
                del self.data[key]

    def _choose_frame(self, where: str, *, keep: bool) -> None:
        """ "Post the first frame" (`keep`) or "Choose another image" for the animated upload of slot "N-M"."""
        part, _, slot = where.partition("-")
        if not (part.isdigit() and slot.isdigit()):
            return
        pending = self.data.pop(f"parts-{part}-pending_{slot}", [""])[0]
        if not pending.isdigit():
            return
        if keep:
            self.data[f"parts-{part}-media_{slot}"] = pending
            return
        for media in Media.objects.filter(pk=int(pending), owner=self.user):
            media.discard()

    def look_up_targets(self) -> bool:
        """Read the posts the form replies to or quotes from their servers (for the preview, and to say at once
        when one does not exist); False when one cannot be used (the field says why)."""
        cleaned = getattr(self.form, "cleaned_data", {})
        channel = self.form.fixed_channel or next(
            (o.channel for o in self.form.options if o.ready and o.channel.pk == cleaned.get("channel")), None
        )
        ok = True
        for name in ComposerForm.REFERENCES:
            address = cleaned.get(name)
            if not address or channel is None:
                continue
            try:
                self.targets[name] = references.look_up(channel, address)
            except IntegrationError as exc:
                self.form.add_error(name, describe(exc).message)
                ok = False
        return ok

    def _drop_removed_images(self) -> None:
        """Forget the images whose "Remove" box is ticked (`purge_unused_media` deletes unused uploads later)."""
        for key in list(self.data):
            match = _PART_KEY.fullmatch(key)
            if not match or not match[2].startswith("remove_") or not self.data.get(key):
                continue
            prefix, slot = f"parts-{match[1]}-", match[2].removeprefix("remove_")
            for name in (f"remove_{slot}", f"media_{slot}", f"alt_{slot}"):
                self.data.pop(prefix + name, None)

    def _remove_part(self, index: int, total: int) -> None:
        """Drop part `index` and number the later parts down, as the page's script does."""
        moved: dict[str, list[Any]] = {}
        for key in list(self.data):
            match = _PART_KEY.fullmatch(key)
            if not match or parse_number(match[1]) is None:
                continue
            values = self.data.getlist(key)
            del self.data[key]
            number = int(match[1])
            if number != index:
                moved[f"parts-{number - (number > index)}-{match[2]}"] = values
        for key, values in moved.items():
            self.data.setlist(key, values)
        self.data["parts-TOTAL_FORMS"] = str(total - 1)

    def is_valid(self) -> bool:
        # Both forms are always validated, so every error is shown at once.
        form_ok, parts_ok = self.form.is_valid(), self.parts.is_valid()
        targets_ok = self.look_up_targets()
        return form_ok and parts_ok and targets_ok and not self.upload_errors

    def requests(self) -> list[services.PartRequest]:
        langs = self.form.cleaned_data["langs"]
        return [part.request(langs) for part in self.parts.forms]


def counter_text(length: richtext.TextLength) -> str:
    """What the composer's counter says (the page's script says the same, from the same translated words)."""
    text = _("%(count)s of %(max)s characters") % {
        "count": number_format(length.graphemes, force_grouping=True),
        "max": number_format(richtext.MAX_GRAPHEMES, force_grouping=True),
    }
    if length.bytes >= BYTES_SHOWN_FROM or length.bytes > richtext.MAX_BYTES:
        text += " · " + _("%(count)s of %(max)s bytes") % {
            "count": number_format(length.bytes, force_grouping=True),
            "max": number_format(richtext.MAX_BYTES, force_grouping=True),
        }
    return text


def script_words() -> dict[str, str]:
    """The words composer.js says, translated here so the page's script and `counter_text` share one catalogue."""
    return {
        "count": str(_("%(count)s of %(max)s characters")),
        "bytes": str(_("%(count)s of %(max)s bytes")),
        "too-long": str(_("Too long:")),
        "approximate": str(_("(approximate: Preview shows the exact count)")),
        "part": str(_("Part %(number)s:")),
        "stale": str(_("Changed since this preview: choose Preview to see it again.")),
        "added": str(_("Part %(number)s added.")),
        "removed": str(_("Part %(number)s removed.")),
        "card-removed": str(_("Link card removed.")),
        "card-restored": str(_("Link card added back.")),
        "alt-required": describe(images.AltTextRequired()).message,
        "no-text": str(_("(no text)")),
        "sending": str(_("Sending…")),
    }


def post_data(post: Post, zone_name: str = "") -> QueryDict:
    """A scheduled post as the composer posts it, so editing it starts from what is stored: each part's text,
    images with alt text and link card (the card as stored, so saving unchanged keeps its words), the languages
    and the time on the user's clock."""
    parts = list(post.parts.order_by("index"))
    data = QueryDict(mutable=True)
    fields: dict[str, Any] = {
        "parts-TOTAL_FORMS": len(parts),
        "parts-INITIAL_FORMS": 0,
        "parts-MIN_NUM_FORMS": 1,
        "parts-MAX_NUM_FORMS": app_settings.POST_MAX_PARTS,
        "langs": ", ".join(parts[0].langs) if parts else "",
        "reply_to": post.reply_to_uri,
        "quote": post.quote_uri,
        "scheduled_at": time_value(post.scheduled_at, zone_name) if post.scheduled_at else "",
        "time_zone": zone_name or timezone.get_current_timezone_name(),
    }
    for index, part in enumerate(parts):
        prefix = f"parts-{index}-"
        text = written_text(part.record) if part.record else part.text
        fields[prefix + "text"] = text
        for slot, image in zip(SLOTS, part.images, strict=False):
            fields[f"{prefix}media_{slot}"] = image["media"]
            fields[f"{prefix}alt_{slot}"] = image["alt"]
        card = part.card
        if card and card.get("pending") and not card.get("explicit"):
            fields[prefix + "card"] = "auto"  # still to be read from the page (`cards.build_pending_cards`)
        elif card:
            fields[prefix + "card"] = "edited"
            fields[prefix + "card_url"] = card["uri"]
            fields[prefix + "card_title"] = card["title"] or ""
            fields[prefix + "card_description"] = card["description"] or ""
        else:
            embedded = bool(part.images) or (index == 0 and bool(post.quote_uri))
            removed = not embedded and not part.card_note and first_link(text) is not None
            fields[prefix + "card"] = "none" if removed else "auto"
    for key, value in fields.items():
        data[key] = str(value)
    return data


def written_text(record: dict[str, Any]) -> str:
    """A planned record's text with its links as written, not as shortened for display, so that the composer
    sends the same text and links again. A link's URI is what was written, except for a bare domain (`https://`
    added): that one is sent as written, so it is kept as it is shown."""
    data = str(record.get("text", "")).encode("utf-8")
    links = []
    for facet in record.get("facets") or ():
        for feature in facet.get("features", ()):
            if feature.get("$type") == "app.bsky.richtext.facet#link" and feature.get("uri"):
                links.append((facet["index"]["byteStart"], facet["index"]["byteEnd"], str(feature["uri"])))
    pieces, cursor = [], 0
    for start, end, uri in sorted(links):
        visible = data[start:end].decode("utf-8")
        pieces.append(data[cursor:start].decode("utf-8"))
        pieces.append(visible if uri == "https://" + visible else uri)
        cursor = end
    pieces.append(data[cursor:].decode("utf-8"))
    return "".join(pieces)


def editable(post: Post) -> bool:
    """Whether the post can still be changed: scheduled and never attempted (`services.edit` checks it again
    under the row lock)."""
    return post.status == Post.Status.SCHEDULED and not post.attempts


# --- link cards ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardView:
    """A part's link card as the composer shows it. `link`: the part's first link ("" when none: nothing shown);
    `url`: the card's link when there is a card to show; `note`: why there is none."""

    link: str = ""
    mode: str = "auto"
    url: str = ""
    title: str = ""
    description: str = ""
    thumb: str = ""  # where the page shows the thumbnail from ("" when the card has none)
    note: str = ""
    covered: bool = False  # the part has images: they take the card's place

    @property
    def host(self) -> str:
        """The card's site as its link names it, with the port when the link has one (example.com:8443)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port}" if host and port else host

    @property
    def shown(self) -> bool:
        return bool(self.url) and self.mode != "none" and not self.covered

    def as_json(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "url": self.url,
            "title": self.title,
            "description": self.description,
            "thumb": self.thumb,
            "host": self.host,
            "note": self.note,
        }


def first_link(text: str) -> str | None:
    """The link a part's card is for: its first, as publishing finds it (a bare domain gets https://)."""
    try:
        facets = richtext.detect_facets(richtext.prepare_text(text))
    except IntegrationError:
        return None
    return next((facet.value for facet in facets if facet.kind == "link"), None)


THUMB_LINK_SALT = "integrations.composer.card-thumb"
THUMB_LINK_MAX_AGE = 3600  # as long as a card stays cached


def thumb_link(user_id: int, link: str) -> str:
    """Where the composer shows a card's thumbnail from: the image view with a token naming the page, signed for this
    user. A page on another site cannot make a signed-in user's browser fetch a page of its choosing through it."""
    token = signing.dumps({"user": user_id, "url": link}, salt=THUMB_LINK_SALT, compress=True)
    return f"{reverse('integrations:link-card-image')}?{urlencode({'card': token})}"


def thumb_link_target(user_id: int, token: str) -> str | None:
    """The page a thumbnail link names, when the token is this user's and less than an hour old; else None."""
    try:
        value = signing.loads(token, salt=THUMB_LINK_SALT, max_age=THUMB_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("user") != user_id or not isinstance(value.get("url"), str):
        return None
    return value["url"]


def card_for(
    text: str,
    *,
    covered: bool = False,
    mode: str = "auto",
    url: str = "",
    title: str | None = None,
    description: str | None = None,
    user_id: int | None = None,
) -> CardView:
    """The card a part with this text will carry: the page's (fetched through `linkcards`, cached; a page read counts
    against `user_id`'s link-card budget), or the user's words when `url` (the card they saw) is still the text's
    first link. No page is read while link cards are switched off, for a part without a link, one whose images take
    the card's place, or one whose card is removed. The thumbnail is shown from a link signed for `user_id`
    (`thumb_link`)."""
    link = first_link(text) if app_settings.LINK_CARDS else None
    if link is None:
        return CardView(mode=mode)
    if covered or mode == "none":
        return CardView(link=link, mode=mode, url=link, covered=covered)
    if mode == "edited" and url != link:
        mode = "auto"  # the text links elsewhere now: that page's card
    result = linkcards.fetch_card(link, user_id=user_id)
    page = result.card
    thumb = thumb_link(user_id, link) if page and page.thumb and user_id is not None else ""
    if url == link and title is not None and description is not None:
        return CardView(link, mode, link, title, description, thumb)
    if page is None:
        return CardView(link, mode, note=str(_("No link card: %(reason)s") % {"reason": mid_sentence(result.reason)}))
    return CardView(link, mode, link, page.title, page.description, thumb)


# --- preview ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartPreview:
    html: SafeString
    length: richtext.TextLength
    images: list[tuple[Media, str]]

    @property
    def fits(self) -> bool:
        return self.length.fits

    @property
    def counter(self) -> str:
        return counter_text(self.length)


def preview(text: str, attached: list[tuple[Media, str]] | None = None) -> PartPreview:
    """The text as it will be sent (prepared, links shortened) with its links, mentions and tags marked up as
    bsky.app shows them. Mentions are linked by handle here; one that does not resolve when publishing stays text."""
    prepared = richtext.prepare_text(text)
    sent, facets = richtext.shorten_links(prepared, richtext.detect_facets(prepared))
    data = sent.encode("utf-8")
    pieces: list[str] = []
    cursor = 0
    for facet in facets:
        pieces.append(format_html("{}", data[cursor : facet.byte_start].decode("utf-8")))
        visible = data[facet.byte_start : facet.byte_end].decode("utf-8")
        pieces.append(format_html(_FACET_LINK, facet.kind, _facet_href(facet), visible))
        cursor = facet.byte_end
    pieces.append(format_html("{}", data[cursor:].decode("utf-8")))
    return PartPreview(mark_safe("".join(pieces)), richtext.count(sent), list(attached or []))  # noqa: S308


_FACET_LINK = '<a class="facet {}" href="{}" target="_blank" rel="noopener noreferrer nofollow">{}</a>'


def _facet_href(facet: richtext.DetectedFacet) -> str:
    if facet.kind == "link":
        return facet.value
    if facet.kind == "mention":
        return f"https://bsky.app/profile/{quote(facet.value)}"
    return f"https://bsky.app/hashtag/{quote(facet.value)}"


@dataclass(frozen=True)
class ThreadPreview:
    """The whole post as Bluesky will show it: who posts it (the channel), when (None: now), the post it replies
    to, and each part with its text, images, link card and (on the first) the quoted post."""

    channel: Channel | None
    when: datetime | None
    reply_to: references.Target | None
    quote: references.Target | None
    parts: list[tuple[PartPreview, CardView]]


def look_up_target(channel: Channel | None, address: str) -> tuple[references.Target | None, str]:
    """The post at `address` for a preview, read through `channel`; else None and why not (in words)."""
    if channel is None or not address:
        return None, ""
    try:
        return references.look_up(channel, address), ""
    except IntegrationError as exc:
        return None, describe(exc).message


def thread_preview(draft: Draft) -> ThreadPreview | None:
    """What Preview shows for a checked submission (None when no part's text can be measured)."""
    shown = []
    for part in draft.parts.forms:
        part_preview = part.preview()
        if part_preview is None:
            return None
        shown.append((part_preview, part.card_view()))
    cleaned = getattr(draft.form, "cleaned_data", {})
    channel = draft.form.fixed_channel or next(
        (o.channel for o in draft.form.options if o.channel.pk == cleaned.get("channel")), None
    )
    return ThreadPreview(
        channel=channel,
        when=cleaned.get("scheduled_at"),
        reply_to=draft.targets.get("reply_to"),
        quote=draft.targets.get("quote"),
        parts=shown,
    )
