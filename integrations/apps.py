from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "API integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import checks, logs, notifications, tasks  # noqa: F401  (register checks and receivers)
        from integrations.bluesky import checks as bluesky_checks  # noqa: F401  (the provider's system checks)
        from integrations.bluesky import options, words  # noqa: F401  (register the provider's options and words)

        tasks.connect()  # the background tasks hear what the post lifecycle asks for
        logs.install()  # every value the app logs has its control characters escaped
