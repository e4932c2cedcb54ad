"""Background tasks (Django's Tasks framework; the project uses the django-tasks-db backend)."""

from datetime import timedelta

from django.tasks import TaskResultStatus, task
from django.utils import timezone

from integrations.bluesky import keepalive
from integrations.conf import app_settings

TASK_PATH = "integrations.tasks.keepalive_sweep"


def _interval() -> timedelta:
    return timedelta(seconds=int(app_settings.KEEPALIVE_INTERVAL))


def schedule_keepalive(delay: timedelta | None = None) -> bool:
    """Enqueue the next sweep unless one is already waiting; True when one was enqueued."""
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # another backend: let it deduplicate
        DBTaskResult = None
    # Any sweep still waiting, due now or later (`ready()` would miss one scheduled for later).
    waiting = DBTaskResult and DBTaskResult.objects.filter(status=TaskResultStatus.READY, task_path=TASK_PATH)
    if waiting and waiting.exists():
        return False
    run_after = timezone.now() + (delay if delay is not None else _interval())
    keepalive_sweep.using(run_after=run_after).enqueue()
    return True


@task()
def keepalive_sweep() -> dict:
    """Refresh every due channel, remove stale unused uploads, then schedule the next sweep."""
    try:
        result = keepalive.sweep().as_dict()
        from integrations.bluesky import publishing

        result["media_removed"] = publishing.purge_unused_media()  # uploads no post used within a day
        result["posts"] = dict(publishing.publish_due())  # a safety net under the per-post retry tasks
        return result
    finally:
        schedule_keepalive()  # even after a failed sweep, the chain goes on


@task()
def publish_post(post_id: int) -> str:
    """One more attempt at a post that is waiting for a retry (the attempt schedules the next one if needed)."""
    from integrations.bluesky import publishing
    from integrations.exceptions import PostBusy
    from integrations.models import Post

    if not Post.objects.filter(pk=post_id, status=Post.Status.WAITING).exists():
        return "nothing to do"
    try:
        outcome = publishing.publish(post_id, retry=True)
    except PostBusy:
        return "busy"  # another worker holds it; that one schedules what comes next
    return outcome.post.status
