from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from integrations.security import rotation


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key of INTEGRATIONS_ENCRYPTION_KEYS (run after putting a new "
        "key first, before dropping the old one) and list the rows no configured key can decrypt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="change nothing; exit with status 1 when a secret is not encrypted with the first key or cannot "
            "be decrypted (for deploy scripts, before dropping an old key)",
        )
        parser.add_argument("--dry-run", action="store_true", help="change nothing; report what would be done")
        parser.add_argument(
            "--batch-size", type=int, default=rotation.DEFAULT_BATCH_SIZE, help="rows read and updated per query"
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="the database alias (default: default)")

    def handle(self, *args: object, **options: object) -> None:
        using = options["database"]
        read_only = options["check"] or options["dry_run"]
        report = rotation.scan(using=using, fix=not read_only, batch_size=max(1, options["batch_size"]))
        for row in report.unreadable_rows:
            self.stderr.write(f"Cannot decrypt with any configured key: {row.describe(using)}")
        if read_only:
            summary = (
                f"{report.total} stored secret(s): {report.current} encrypted with the first key, {report.stale} "
                f"with an older key (to re-encrypt), {report.unreadable} unreadable."
            )
        else:
            left = report.stale - report.reencrypted
            summary = (
                f"{report.total} stored secret(s): {report.reencrypted} re-encrypted with the first key, "
                f"{report.current} already were, {report.unreadable} unreadable (left as they are)"
                + (f", {left} changed meanwhile (already current)." if left else ".")
            )
        self.stdout.write(summary)
        if options["check"] and (report.stale or report.unreadable):
            problems = []
            if report.stale:
                problems.append(f"{report.stale} not encrypted with the first key: run integrations_reencrypt")
            if report.unreadable:
                problems.append(
                    f"{report.unreadable} no configured key decrypts: put the dropped key back and re-encrypt, or "
                    "have their owners reconnect"
                )
            raise CommandError("; ".join(problems) + ".", returncode=1)
