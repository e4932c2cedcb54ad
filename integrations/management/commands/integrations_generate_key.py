from django.core.management.base import BaseCommand

from integrations.security.crypto import generate_key


class Command(BaseCommand):
    help = "Print a new encryption key for INTEGRATIONS_ENCRYPTION_KEYS."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(generate_key())
