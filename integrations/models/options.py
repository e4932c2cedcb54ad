"""The stored option values (`integrations.options` reads them) and who may change them."""

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from integrations import options


class IntegrationOption(models.Model):
    """One stored option value; an empty value means "not overridden" (env or default applies)."""

    key = models.CharField(max_length=100, unique=True)
    value = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "API integration setting"
        verbose_name_plural = "API integration settings"
        permissions = [("manage_integrations", "Can manage API integration settings")]

    def __str__(self) -> str:
        return self.key


# Who may see and change the integration settings (declared on IntegrationOption above).
MANAGE_PERMISSION = "integrations.manage_integrations"


@receiver([post_save, post_delete], sender=IntegrationOption)
def _invalidate_option_cache(**kwargs: object) -> None:
    options.invalidate()
    # Again after commit: a reader in another process may have re-cached the old value meanwhile.
    transaction.on_commit(options.invalidate)
