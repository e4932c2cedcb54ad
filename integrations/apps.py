from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "API integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import checks  # noqa: F401  (registers the system checks)
        from integrations.bluesky import options, words  # noqa: F401  (register the provider's options and words)
