"""Bluesky's options in the generic registry: Service URL, Status and accounts on other servers, and how the app
reads them."""

from integrations import options
from integrations.bluesky.xrpc.servers import normalize_service_url
from integrations.options import OptionDef, ResolvedOption, Source

SERVICE_URL = options.register(
    OptionDef(
        key="bluesky_service-url",
        label="Service URL",
        default="https://bsky.social",
        setting="BLUESKY_SERVICE_URL",
        env_var="BLUESKY_SERVICE_URL",
        clean=normalize_service_url,
    )
)
STATUS = options.register(
    OptionDef(
        key="bluesky_integration_status",
        label="Status",
        default="enabled",
        choices=(("enabled", "Enabled"), ("disabled", "Disabled")),
    )
)
OTHER_SERVERS = options.register(
    OptionDef(
        key="bluesky_other_servers",
        label="Accounts on other servers",
        default="refuse",
        setting="BLUESKY_OTHER_SERVERS",
        env_var="BLUESKY_OTHER_SERVERS",
        choices=(("refuse", "Refuse"), ("allow", "Allow")),
    )
)


# The settings page's form fields and the options they edit.
PAGE_FIELDS = {"service_url": SERVICE_URL, "status": STATUS, "other_servers": OTHER_SERVERS}


def service_url(resolved: ResolvedOption | None = None) -> ResolvedOption:
    """The PDS URL in force, normalised; ValidationError when it is not acceptable under the current settings
    (a value from the settings, or a stored one saved while http:// or local hosts were allowed). `resolved`: the
    option as the caller already resolved it."""
    resolved = resolved or options.resolve(SERVICE_URL.key)
    if resolved.source is Source.DEFAULT:
        return resolved
    return ResolvedOption(normalize_service_url(resolved.value), resolved.source, resolved.raw_env)


def enabled() -> bool:
    """Whether the administrator has the Bluesky integration switched on."""
    return options.resolve(STATUS.key).value != "disabled"


def other_servers_allowed() -> bool:
    """Whether accounts hosted on another PDS than the Service URL sign in on their own PDS (else they are told)."""
    return options.resolve(OTHER_SERVERS.key).value.lower() == "allow"
