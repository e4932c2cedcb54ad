import sys
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser

from integrations.bluesky.accounts import keepalive
from integrations.tasks import schedule_keepalive


class Command(BaseCommand):
    help = "Refresh every Bluesky session that would otherwise run out (one sweep), or schedule the recurring task."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=None, help="refreshes in flight at once (default 4)")
        parser.add_argument(
            "--within-days", type=int, default=None, help="refresh sessions ending within this many days (default 30)"
        )
        parser.add_argument(
            "--stale-days", type=int, default=None, help="refresh sessions not refreshed for this many days (default 7)"
        )
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="enqueue the recurring background sweep (run by `manage.py db_worker`) and exit",
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["schedule"]:
            enqueued = schedule_keepalive(delay=timedelta(0))
            self.stdout.write("Keep-alive sweep enqueued." if enqueued else "A keep-alive sweep is already queued.")
            return
        due = keepalive.channels_due(within_days=options["within_days"], stale_days=options["stale_days"]).count()
        bar = None
        if sys.stdout.isatty() and due:
            from tqdm import tqdm

            bar = tqdm(total=due, unit="channel", desc="Refreshing")
        result = keepalive.sweep(
            concurrency=options["concurrency"],
            within_days=options["within_days"],
            stale_days=options["stale_days"],
            progress=bar.update if bar else None,
        )
        if bar:
            bar.close()
        failed = ", ".join(f"{code}: {n}" for code, n in sorted(result.failed.items())) or "none"
        self.stdout.write(
            f"{result.due} due, {result.refreshed} refreshed, {result.skipped} already fresh, failed: {failed} "
            f"({result.seconds:.1f} s)"
        )
