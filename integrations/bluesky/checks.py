"""The provider's system checks, registered when the app is ready (`IntegrationsConfig.ready`)."""

from typing import Any

from django.core import checks
from django.core.exceptions import ValidationError

from integrations.bluesky import options as bluesky_options
from integrations.bluesky.xrpc.servers import normalize_service_url
from integrations.conf import app_settings


@checks.register()
def check_service_url_env(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A bad BLUESKY_SERVICE_URL (INTEGRATIONS_BLUESKY_SERVICE_URL) is reported here, not at the first connection."""
    env_var = bluesky_options.SERVICE_URL.env_var
    raw = app_settings.BLUESKY_SERVICE_URL.strip()
    if not raw:
        return []
    try:
        normalize_service_url(raw)
    except ValidationError as exc:
        return [
            checks.Error(
                f"{env_var} is not a usable PDS URL (the setting INTEGRATIONS_BLUESKY_SERVICE_URL): "
                + " ".join(exc.messages),
                hint="Fix it in .env or the environment (e.g. https://bsky.social), or leave it unset. Local "
                "http:// servers need INTEGRATIONS_ALLOW_INSECURE_PDS=true.",
                id="integrations.E003",
            )
        ]
    return []
