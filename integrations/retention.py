"""What would otherwise grow without bound, pruned by the keep-alive sweep: old channel events and finished task
results (`INTEGRATIONS_EVENTS_RETENTION_DAYS`, `INTEGRATIONS_TASK_RESULTS_RETENTION_DAYS`).

Rows go in batches of `BATCH` by primary key, each its own short statement, so a first prune of a long history never
holds one huge delete's locks.
"""

from datetime import timedelta

from django.db.models import QuerySet
from django.tasks import TaskResultStatus
from django.utils import timezone

from integrations.conf import app_settings
from integrations.models import ChannelEvent

BATCH = 5000


def prune_events() -> int:
    """Delete channel events older than `INTEGRATIONS_EVENTS_RETENTION_DAYS` (0: keep them all); how many."""
    days = app_settings.EVENTS_RETENTION_DAYS
    if days <= 0:
        return 0
    return _delete_in_batches(ChannelEvent.objects.filter(created_at__lt=timezone.now() - timedelta(days=days)))


def prune_task_results() -> int:
    """Delete finished background task results (django-tasks-db's table) older than
    `INTEGRATIONS_TASK_RESULTS_RETENTION_DAYS` (0: keep them all); how many. Runs still waiting or running are never
    touched. With another task backend there is nothing here to prune (0)."""
    days = app_settings.TASK_RESULTS_RETENTION_DAYS
    if days <= 0:
        return 0
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # another backend keeps its results its own way
        return 0
    finished = DBTaskResult.objects.filter(
        status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED],
        finished_at__lt=timezone.now() - timedelta(days=days),
    )
    return _delete_in_batches(finished)


def _delete_in_batches(queryset: QuerySet) -> int:
    deleted = 0
    while ids := list(queryset.order_by().values_list("pk", flat=True)[:BATCH]):
        count, _ = queryset.model.objects.filter(pk__in=ids).delete()
        deleted += count
    return deleted
