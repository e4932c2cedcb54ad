"""One submission of the composer (`Draft`): its uploads stored, its buttons applied to what was written, and the
forms bound to the result; and a stored scheduled post turned back into what the composer submits, for editing it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.forms.utils import ErrorDict
from django.http import QueryDict
from django.utils import timezone

from integrations.adapter import describe
from integrations.bluesky import services
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError
from integrations.models import Channel, Media, Post, PostPart
from integrations.validators import parse_number
from integrations.web.compose.cards import card_link
from integrations.web.compose.channels import ChannelOption
from integrations.web.compose.forms import SLOTS, ComposerForm, part_formset, time_value
from integrations.web.compose.preview import ThreadPreview
from integrations.web.compose.submit_tokens import new_submit_token

_UPLOAD = re.compile(r"parts-([0-9]{1,4})-image_([0-9])")
_PART_KEY = re.compile(r"parts-([0-9]{1,4})-(.+)")


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
        self._press(index)
        self.form = ComposerForm(self.data, options=options, channel=channel)
        self.parts = part_formset()(self.data, prefix="parts", form_kwargs={"user": user})
        if self.parts.forms:
            self.parts.forms[0].quoting = bool(str(self.data.get("quote", "")).strip())
        self.targets: dict[str, services.Target] = {}
        if not self.checked:
            self._quiet()
        for (index, slot), message in self.upload_errors.items():
            if index < len(self.parts.forms):
                self.parts.forms[index].add_error(f"image_{slot}", message)

    def _press(self, index: str) -> None:
        """Apply the button that sent the form ("add", "remove-N", "nocard-N", "card-N", "frame-N-M", "noframe-N-M")
        to what was written."""
        total = self._total()
        if self.action == "add" and total < app_settings.POST_MAX_PARTS:
            self.data["parts-TOTAL_FORMS"] = str(total + 1)
        elif self.action == "remove" and (number := parse_number(index)) is not None and total > 1:
            self._remove_part(number, total)
        elif self.action in ("nocard", "card") and (number := parse_number(index)) is not None and number < total:
            self.data[f"parts-{index}-card"] = "none" if self.action == "nocard" else "auto"
        elif self.action in ("frame", "noframe"):
            self._choose_frame(index, keep=self.action == "frame")

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
        return min(number, app_settings.POST_MAX_PARTS) if number is not None else 1

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
                except services.AnimatedImage:
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
                self.targets[name] = services.look_up_post(channel, address)
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
        """The parts as `services.submit_post` takes them, each with the post's languages."""
        langs = self.form.cleaned_data["langs"]
        return [part.request(langs) for part in self.parts.forms]


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
        fields.update(_part_fields(post, index, part))
    for key, value in fields.items():
        data[key] = str(value)
    return data


def _part_fields(post: Post, index: int, part: PostPart) -> dict[str, Any]:
    """One stored part as the composer's fields: its text as written, its images and its link card."""
    prefix = f"parts-{index}-"
    text = written_text(part.record) if part.record else part.text
    fields: dict[str, Any] = {prefix + "text": text}
    for slot, image in zip(SLOTS, part.images, strict=False):
        fields[f"{prefix}media_{slot}"] = image["media"]
        fields[f"{prefix}alt_{slot}"] = image["alt"]
    card = part.card
    if card and card.get("pending") and not card.get("explicit"):
        fields[prefix + "card"] = "auto"  # still to be read from the page (`build_pending_cards`)
    elif card:
        fields[prefix + "card"] = "edited"
        fields[prefix + "card_url"] = card["uri"]
        fields[prefix + "card_title"] = card["title"] or ""
        fields[prefix + "card_description"] = card["description"] or ""
    else:
        embedded = bool(part.images) or (index == 0 and bool(post.quote_uri))
        removed = not embedded and not part.card_note and card_link(text) is not None
        fields[prefix + "card"] = "none" if removed else "auto"
    return fields


def written_text(record: dict[str, Any]) -> str:
    """A planned record's text with its links as written, not as shortened for display, so that the composer
    sends the same text and links again. A link's URI is what was written, except for a bare domain (`https://`
    added): that one is sent as written, so it is kept as it is shown."""
    data = str(record.get("text", "")).encode("utf-8")
    pieces, cursor = [], 0
    for start, end, uri in sorted(services.link_spans(record.get("facets") or ())):
        visible = data[start:end].decode("utf-8")
        pieces.append(data[cursor:start].decode("utf-8"))
        pieces.append(visible if uri == "https://" + visible else uri)
        cursor = end
    pieces.append(data[cursor:].decode("utf-8"))
    return "".join(pieces)


def editable(post: Post) -> bool:
    """Whether the post can still be changed: scheduled and never attempted (`services.edit_post` checks it
    again under the row lock)."""
    return post.status == Post.Status.SCHEDULED and not post.attempts
