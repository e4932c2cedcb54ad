from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser

from integrations.bluesky.posts import submit
from integrations.tasks import schedule_publishing


class Command(BaseCommand):
    help = "Publish every due post now (scheduled, waiting to retry, or abandoned), or schedule the recurring task."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="enqueue the recurring background task (run by `manage.py db_worker`) and exit",
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["schedule"]:
            enqueued = schedule_publishing(delay=timedelta(0))
            self.stdout.write("Publishing of due posts enqueued." if enqueued else "It is already queued.")
            return
        outcome = submit.publish_due()
        self.stdout.write(", ".join(f"{status}: {n}" for status, n in sorted(outcome.items())) or "Nothing was due.")
