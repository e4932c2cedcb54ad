"""Model fields for secrets: encrypted on the way into the database, decrypted on the way out."""

from typing import Any

from django.db import models

from integrations import crypto


class EncryptedTextField(models.TextField):
    """A text column stored as Fernet ciphertext (see `integrations.crypto`). Empty stays empty."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str:
        if not value:
            return ""
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> str:
        value = super().get_prep_value(value)
        if not value:
            return ""
        return crypto.encrypt(value)
