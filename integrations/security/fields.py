"""Model fields for secrets: encrypted on the way into the database, decrypted on the way out."""

import logging
from typing import Any

from django.db import models

from integrations.security import crypto

logger = logging.getLogger(__name__)


class EncryptedTextField(models.TextField):
    """A text column stored as Fernet ciphertext (see `integrations.security.crypto`). Empty stays empty.

    Values read back are `crypto.Secret`s. A stored value that no configured key decrypts (its key was dropped from
    `INTEGRATIONS_ENCRYPTION_KEYS`) reads as an empty `Secret` with `readable=False` instead of raising, so the row
    still loads and the app can say what happened; saving the row writes whatever value it then holds (an empty
    one, or the new token of a reconnection) over the old ciphertext.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str:
        if not value:
            return crypto.Secret("")
        try:
            return crypto.Secret(crypto.decrypt(value))
        except crypto.DecryptionError:
            # Model and field only: the ciphertext is not a secret, but it has no business in logs either.
            logger.warning(
                "a stored %s.%s could not be decrypted with any key in INTEGRATIONS_ENCRYPTION_KEYS; it reads as "
                "empty (run manage.py integrations_reencrypt to list such rows)",
                self.model._meta.label,
                self.name,
            )
            return crypto.Secret("", readable=False)

    def get_prep_value(self, value: Any) -> str:
        value = super().get_prep_value(value)
        if not value:
            return ""
        return crypto.encrypt(value)
