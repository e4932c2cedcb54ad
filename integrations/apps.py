from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "API integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import checks, logs, notifications  # noqa: F401  (register the system checks and receivers)
        from integrations.bluesky import checks as bluesky_checks  # noqa: F401  (the provider's system checks)
        from integrations.bluesky import options, words  # noqa: F401  (register the provider's options and words)

        logs.install()  # every value the app logs has its control characters escaped
