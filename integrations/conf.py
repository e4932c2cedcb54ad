"""The app's settings, in one place: every `INTEGRATIONS_*` setting with its default, type and meaning.

Read them as `app_settings.HTTP_TIMEOUT` (the name without the prefix), already of the type the app uses (a number,
a bool, text): call sites never cast. Values come from Django's settings on every read, so `override_settings` and
pytest-django's `settings` fixture work in tests. A project sets them in its
settings module (the demo project reads them from the environment with django-environ); `manage.py check` reports
a value of the wrong type (`integrations.E010`). The README's configuration table is checked against `SETTINGS` by
a test.
"""

from dataclasses import dataclass
from types import NoneType
from typing import Any

from django.conf import settings

PREFIX = "INTEGRATIONS_"


@dataclass(frozen=True)
class Setting:
    """One setting: its name without the prefix, its default, the types it accepts and one line of meaning."""

    name: str
    default: Any
    types: tuple[type, ...]
    help: str

    @property
    def full_name(self) -> str:
        return PREFIX + self.name

    def cast(self, value: Any) -> Any:
        """`value` as the app uses it: a number or a bool as such, the text settings read as text ("" when unset).
        A value of the wrong type is reported by `manage.py check` (E010), which reads the value as configured."""
        if self.types == (bool,):
            return bool(value)
        if self.types == (int,):
            return int(value)
        if self.types == (int, float):
            return float(value)
        if self.name in _TEXT:
            return str(value or "")
        return value


# Text settings read as text whatever they hold, "" when unset (the other text settings are handed over as configured).
_TEXT = frozenset({"BLUESKY_SERVICE_URL", "BLUESKY_OTHER_SERVERS"})


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "ENCRYPTION_KEYS",
        [],
        (list, tuple),
        "Fernet keys; the first encrypts, every one decrypts. Empty: a key derived from SECRET_KEY (development).",
    ),
    Setting(
        "ALLOW_INSECURE_PDS",
        False,
        (bool,),
        "Accept http:// and loopback/private hosts for the Service URL, the PLC directory and channels' own PDS (a "
        "local PDS in development and tests, or one on a private network); never for link cards or other URLs users "
        "name.",
    ),
    Setting(
        "BLUESKY_SERVICE_URL",
        "",
        (str,),
        "The PDS URL used when the admin page sets none (the demo project reads it from BLUESKY_SERVICE_URL).",
    ),
    Setting(
        "BLUESKY_OTHER_SERVERS",
        "",
        (str,),
        "'allow' or 'refuse' accounts hosted on another PDS when the admin page sets none (BLUESKY_OTHER_SERVERS).",
    ),
    Setting("HTTP_TIMEOUT", 10.0, (int, float), "Seconds before an outbound call gives up."),
    Setting("REFRESH_MARGIN", 300, (int,), "Refresh an access token this many seconds before it ends."),
    Setting(
        "REFRESH_COALESCE", 30, (int,), "A user refresh within this many seconds of a rotation returns the session."
    ),
    Setting("KEEPALIVE_WITHIN_DAYS", 30, (int,), "Keep-alive refreshes sessions ending within this many days."),
    Setting("KEEPALIVE_STALE_DAYS", 7, (int,), "Keep-alive refreshes sessions not refreshed for this many days."),
    Setting("KEEPALIVE_CONCURRENCY", 4, (int,), "Keep-alive refreshes at most this many sessions at once."),
    Setting("KEEPALIVE_INTERVAL", 6 * 3600, (int,), "Seconds between two keep-alive sweeps."),
    Setting(
        "TRUSTED_PROXY_HEADER",
        None,
        (str, NoneType),
        "Behind a reverse proxy: the request.META key holding the client address, e.g. HTTP_X_REAL_IP.",
    ),
    Setting(
        "CONNECT_RATES",
        {},
        (dict,),
        "Connect-attempt limits to override, e.g. {'user': (10, 300)}: scope -> (attempts, window seconds).",
    ),
    Setting("CACHE_ALIAS", "default", (str,), "The cache shared by every process (options, limits, lookups)."),
    Setting(
        "ADAPTER",
        "integrations.adapter.IntegrationsAdapter",
        (str,),
        "Dotted path of the adapter class: the words users read and who is told about a channel's problems.",
    ),
    Setting(
        "EVENTS_SHOWN",
        50,
        (int,),
        "How many of a channel's latest events its page and the API's first page list (at most 100).",
    ),
    Setting(
        "EVENTS_RETENTION_DAYS",
        90,
        (int,),
        "Channel events older than this many days are removed by the keep-alive sweep (0: kept forever).",
    ),
    Setting(
        "TASK_RESULTS_RETENTION_DAYS",
        7,
        (int,),
        "Finished background task results older than this many days are removed by the keep-alive sweep (0: kept).",
    ),
    Setting("POST_MAX_PARTS", 25, (int,), "How many parts a thread may have."),
    Setting(
        "PLC_URL",
        "https://plc.directory",
        (str,),
        "The PLC directory did:plc documents are read from (the demo project reads BLUESKY_PLC_URL).",
    ),
    Setting(
        "DNS_NAMESERVERS",
        [],
        (list, tuple),
        "DNS servers for handle TXT lookups, as 'host' or 'host:port'. Empty: the system's resolver.",
    ),
    Setting(
        "POST_ALT_TEXT_REQUIRED",
        True,
        (bool,),
        "Every image in a post needs alt text (a description for people who cannot see it); False makes it optional.",
    ),
    Setting(
        "NOTIFY_OWNERS",
        True,
        (bool,),
        "E-mail a channel's owner once when it newly needs reconnection or its account is deactivated or suspended.",
    ),
    Setting(
        "POST_DEFAULT_LANG",
        "",
        (str,),
        "A post's language when its author names none (BCP 47, e.g. 'de'). Empty: the request's, else LANGUAGE_CODE.",
    ),
    Setting(
        "LINK_CARDS",
        True,
        (bool,),
        "A post with a link and no images or quote gets a card built from the page's metadata; False: never.",
    ),
    Setting(
        "SCHEDULE_MISSED_AFTER",
        24 * 3600,
        (int,),
        "A scheduled post that cannot go out within this many seconds of its time fails as missed.",
    ),
    Setting("SCHEDULE_INTERVAL", 30, (int,), "Seconds between two runs of the task that publishes due posts."),
    Setting(
        "LINK_CARD_TIMEOUT",
        5.0,
        (int, float),
        "Seconds a link card may take in all (its page and image, however slowly they arrive).",
    ),
    Setting(
        "LINK_CARD_RATES",
        {},
        (dict,),
        "Per-user link-card budget to override, e.g. {'pages': (100, 3600), 'bytes': (50_000_000, 3600)}: pages "
        "read and bytes received -> (limit, window seconds).",
    ),
    Setting(
        "POST_RATES",
        {},
        (dict,),
        "Per-user post limits to override, e.g. {'user': (60, 60), 'user_day': (5000, 86400)}: scope -> (posts "
        "accepted, window seconds), web and API together.",
    ),
    Setting(
        "SITE_URL",
        "",
        (str,),
        "The site's address as its users reach it, e.g. https://skyport.example.com: e-mail links start with it "
        "(the demo project reads SITE_URL).",
    ),
    Setting("UPLOADS_PER_HOUR", 300, (int,), "How many images one user may upload in an hour (web and API together)."),
    Setting(
        "MEDIA_BYTES_PER_USER",
        1_000_000_000,
        (int,),
        "How many bytes of images (uploads and link-card thumbnails) one user may keep stored at once.",
    ),
    Setting("SCHEDULED_POSTS_PER_USER", 10_000, (int,), "How many posts one user may have scheduled at once."),
    Setting(
        "MAX_REQUEST_BYTES",
        100_000_000,
        (int,),
        "Requests with a larger body are refused (413) before it is read (RequestSizeLimitMiddleware).",
    ),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


class AppSettings:
    """`app_settings.NAME` is the project's `INTEGRATIONS_NAME`, or its default."""

    def __getattr__(self, name: str) -> Any:
        try:
            setting = BY_NAME[name]
        except KeyError:
            raise AttributeError(f"There is no setting {PREFIX}{name}.") from None
        return setting.cast(self.configured(setting))

    @staticmethod
    def configured(setting: Setting) -> Any:
        """The value as the project configured it (or the default), before `Setting.cast`."""
        return getattr(settings, setting.full_name, setting.default)

    def wrong_types(self) -> list[tuple[Setting, Any]]:
        """The settings whose configured value has a type the app cannot use."""
        return [
            (setting, value)
            for setting in SETTINGS
            if not isinstance(value := self.configured(setting), setting.types)
            or (isinstance(value, bool) and bool not in setting.types)
        ]


app_settings = AppSettings()
