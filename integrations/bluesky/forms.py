"""Bluesky's forms: the admin settings page (Service URL, Status) and the connect page (handle + app password)."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from integrations.bluesky import options as bluesky_options
from integrations.bluesky.identity import identifiers
from integrations.bluesky.xrpc.servers import normalize_service_url


class BlueskySettingsForm(forms.Form):
    """The two Bluesky options. An empty Service URL means "use the env variable or the default"."""

    service_url = forms.CharField(
        label=_("Service URL"),
        required=False,
        max_length=500,
        help_text="The PDS to sign in against, e.g. https://bsky.social. Leave empty to use BLUESKY_SERVICE_URL "
        "from the environment, or https://bsky.social.",
        widget=forms.TextInput(attrs={"placeholder": "https://bsky.social", "size": 50}),
    )
    status = forms.ChoiceField(label=_("Status"), choices=bluesky_options.STATUS.choices)
    other_servers = forms.ChoiceField(
        label=_("Accounts on other servers"),
        required=False,
        # Short labels: a select cannot wrap, and the admin shows it whole on a phone (375 px).
        choices=(("", _("Not set here")), *bluesky_options.OTHER_SERVERS.choices),
        help_text=_(
            "When the Service URL refuses an account whose DID document names another PDS: refuse tells the user "
            "where the account is hosted; allow signs the account in on that PDS (only for a verified handle or a "
            "DID). Not set here: BLUESKY_OTHER_SERVERS from the environment, else refuse."
        ),
    )
    test_account = forms.CharField(
        label=_("Account to test"),
        required=False,
        max_length=2048,
        help_text=_(
            "Optional, for Test connection (never saved): a handle or DID. Shows its DID, its PDS, whether the handle "
            "is verified, and whether this site can sign that account in with these settings."
        ),
        widget=forms.TextInput(attrs={"placeholder": "alice.example.com", "size": 50}),
    )

    def clean_service_url(self) -> str:
        value = self.cleaned_data["service_url"].strip()
        return normalize_service_url(value) if value else ""


class ConnectBlueskyForm(forms.Form):
    """Handle (or email, or DID) and an app password. The password is never stored."""

    identifier = forms.CharField(
        label=_("Handle or email"),
        max_length=2048,
        widget=forms.TextInput(
            attrs={
                "placeholder": "alice.bsky.social",
                "autocomplete": "username",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )
    app_password = forms.CharField(
        label=_("App password"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"placeholder": "xxxx-xxxx-xxxx-xxxx", "autocomplete": "off"}),
        help_text=_("Create one at bsky.app → Settings → Privacy and security → App passwords."),
    )

    def clean_identifier(self) -> str:
        return identifiers.normalize_identifier(self.cleaned_data["identifier"])

    def clean_app_password(self) -> str:
        value = self.cleaned_data["app_password"]
        if not value.strip():
            raise ValidationError(_("Enter the app password."), code="required")
        return value.strip()
