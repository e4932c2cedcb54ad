"""The Bluesky settings page in the admin (`/admin/api-integration/bluesky`, wired by `integrations.admin_urls`):
Service URL, Status and accounts on other servers, with where the URL in force comes from."""

from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters

from integrations import options
from integrations.adapter import describe
from integrations.bluesky import options as bluesky_options
from integrations.bluesky import services
from integrations.bluesky.forms import BlueskySettingsForm
from integrations.bluesky.xrpc.servers import normalize_service_url
from integrations.exceptions import IntegrationError
from integrations.models import MANAGE_PERMISSION, IntegrationOption, Post

_SOURCE_LABELS = {
    options.Source.DB: "set on this page",
    options.Source.ENV: f"from the environment ({bluesky_options.SERVICE_URL.env_var})",
    options.Source.DEFAULT: "the built-in default",
}


@method_decorator(sensitive_post_parameters(), name="__call__")
class BlueskySettingsView:
    """`/admin/api-integration/bluesky`: Service URL and Status, with where the URL in force comes from."""

    template_name = "admin/integrations/bluesky_settings.html"

    def __init__(self, site: admin.AdminSite) -> None:
        self.site = site

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(MANAGE_PERMISSION):
            raise PermissionDenied
        stored = options.stored_values()
        initial = {field: stored.get(option.key, "") for field, option in bluesky_options.PAGE_FIELDS.items()}
        initial["status"] = options.resolve(bluesky_options.STATUS.key).value  # the Status in force, default included
        in_force: _InForce | None = None  # the Service URL, resolved once per request (after any save attempt)
        test_result: dict[str, Any] | None = None
        fingerprint = options.stored_fingerprint()
        if request.method == "POST":
            form = BlueskySettingsForm(request.POST, initial=initial)
            if form.is_valid():
                if "_test" in request.POST:
                    in_force = _InForce.resolve()
                    url = form.cleaned_data["service_url"] or in_force.url_to_test
                    test_result = self._test(url, form.cleaned_data["test_account"])
                elif not self._save_unless_changed_since(request, form, request.POST.get("version", "")):
                    form.add_error(
                        None,
                        _(
                            "Someone else saved these settings while you were editing. Nothing was changed: check "
                            "the values in force above and save again."
                        ),
                    )
                    fingerprint = options.stored_fingerprint()
                else:
                    messages.success(request, _("The Bluesky settings were saved."))
                    return HttpResponseRedirect(request.path)
        else:
            form = BlueskySettingsForm(initial=initial)
        return TemplateResponse(
            request,
            self.template_name,
            {
                **self.site.each_context(request),
                "title": "Bluesky integration",
                "form": form,
                "effective": (in_force or _InForce.resolve()).effective(),
                "env_var": bluesky_options.SERVICE_URL.env_var,
                "default_url": bluesky_options.SERVICE_URL.default,
                "test_result": test_result,
                "version": fingerprint,
                "waiting_posts": Post.objects.filter(status=Post.Status.WAITING).count(),
                "integration_enabled": bluesky_options.enabled(),
            },
            status=400 if request.method == "POST" and not form.is_valid() else 200,
        )

    @staticmethod
    def _test(url: str, account: str = "") -> dict[str, Any]:
        checked = services.check_account(account, url) if account.strip() else None
        try:
            description = services.test_connection(url)
        except IntegrationError as exc:
            return {"ok": False, "url": url, "message": describe(exc).message, "account": checked}
        return {"ok": True, "url": url, "description": description, "account": checked}

    @staticmethod
    def _save_unless_changed_since(request: HttpRequest, form: BlueskySettingsForm, seen_version: str) -> bool:
        """Save the form's values if the stored ones are still those the editor saw (`seen_version`); False, with
        nothing changed, when someone else saved meanwhile.

        The check and the write happen under the option rows' locks, so of two simultaneous saves from the same
        version exactly one wins (the other waits for the lock, then sees the new values).
        """
        values = {option.key: form.cleaned_data[field] for field, option in bluesky_options.PAGE_FIELDS.items()}
        with transaction.atomic():
            # Rows to lock must exist: an empty value means "not overridden", so creating them changes nothing.
            IntegrationOption.objects.bulk_create(
                [IntegrationOption(key=key, value="") for key in sorted(options.REGISTRY)], ignore_conflicts=True
            )
            locked = {o.key: o for o in IntegrationOption.objects.select_for_update().order_by("key")}
            if options.fingerprint({key: o.value for key, o in locked.items()}) != seen_version:
                transaction.set_rollback(True)
                return False
            for key, value in values.items():
                option = locked[key]
                if option.value == value:
                    continue
                old = option.value
                option.value, option.updated_by = value, request.user
                option.save()
                LogEntry.objects.log_actions(
                    user_id=request.user.pk,
                    queryset=[option],
                    action_flag=CHANGE if old else ADDITION,
                    change_message=f"{key}: {old!r} → {value!r}" if old else f"{key} = {value!r}",
                    single_object=True,
                )
        return True


@dataclass(frozen=True)
class _InForce:
    """The Service URL in force, resolved once: its value ("(invalid)" when it is not acceptable, never the raw value,
    which may hold credentials), what is wrong with it, and where it comes from."""

    resolved: options.ResolvedOption
    value: str
    problem: str

    @classmethod
    def resolve(cls) -> "_InForce":
        resolved = options.resolve(bluesky_options.SERVICE_URL.key)
        try:
            return cls(resolved, bluesky_options.service_url(resolved).value, "")
        except ValidationError as exc:
            problem = " ".join(exc.messages)
            if exc.code in ("insecure", "private_host"):  # e.g. `make serve` (DEBUG off) after `make run`
                problem += " " + str(
                    _(
                        "http:// and loopback or private servers (a local PDS) are accepted only with "
                        "INTEGRATIONS_ALLOW_INSECURE_PDS=true, which is on by default only with DEBUG: set it in "
                        ".env for a local PDS, or use the server's https:// address."
                    )
                )
            return cls(resolved, "(invalid)", problem)

    @property
    def url_to_test(self) -> str:
        """What Test connection calls when the form names no URL: the one in force, else the default."""
        return bluesky_options.SERVICE_URL.default if self.problem else self.value

    def effective(self) -> dict[str, Any]:
        """Where the Service URL in force comes from, for the page."""
        resolved = self.resolved
        try:
            env_value = normalize_service_url(resolved.raw_env) if resolved.raw_env else None
        except ValidationError:
            env_value = "(invalid)"
        return {
            "value": self.value,
            "source": resolved.source.value,
            "source_label": _SOURCE_LABELS[resolved.source],
            "problem": self.problem,
            "env_value": env_value,
            "problem_source": f"{bluesky_options.SERVICE_URL.env_var}"
            if resolved.source is options.Source.ENV
            else "The stored Service URL",
        }
