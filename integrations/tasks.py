"""Background tasks (Django's Tasks framework; the project uses the django-tasks-db backend)."""

from datetime import datetime, timedelta
from typing import Any

from django.tasks import TaskResultStatus, task
from django.utils import timezone

from integrations.bluesky import keepalive
from integrations.conf import app_settings

TASK_PATH = "integrations.tasks.keepalive_sweep"
PUBLISH_DUE_PATH = "integrations.tasks.publish_due_posts"


def _interval() -> timedelta:
    return timedelta(seconds=int(app_settings.KEEPALIVE_INTERVAL))


def _enqueue_once(task_obj: Any, task_path: str, run_after: datetime) -> bool:
    """Enqueue a chained task unless one of its runs is already waiting; True when one was enqueued."""
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # another backend: let it deduplicate
        DBTaskResult = None
    # Any run still waiting, due now or later (`ready()` would miss one scheduled for later).
    waiting = DBTaskResult and DBTaskResult.objects.filter(status=TaskResultStatus.READY, task_path=task_path)
    if waiting and waiting.exists():
        return False
    task_obj.using(run_after=run_after).enqueue()
    return True


def schedule_keepalive(delay: timedelta | None = None) -> bool:
    """Enqueue the next sweep unless one is already waiting; True when one was enqueued."""
    return _enqueue_once(keepalive_sweep, TASK_PATH, timezone.now() + (delay if delay is not None else _interval()))


def schedule_publishing(delay: timedelta | None = None) -> bool:
    """Enqueue the next run of `publish_due_posts` unless one is already waiting; True when one was enqueued.

    Two workers starting at once may enqueue two runs; the chains merge, since a run schedules the next one only
    when none is waiting."""
    delay = delay if delay is not None else timedelta(seconds=int(app_settings.SCHEDULE_INTERVAL))
    return _enqueue_once(publish_due_posts, PUBLISH_DUE_PATH, timezone.now() + delay)


@task()
def keepalive_sweep() -> dict:
    """Refresh every due channel, remove stale unused uploads, then schedule the next sweep."""
    try:
        result = keepalive.sweep().as_dict()
        from integrations import throttling
        from integrations.bluesky import publishing

        result["media_removed"] = publishing.purge_unused_media()  # uploads no post used within a day
        result["rate_counters_removed"] = throttling.prune_counters()  # windows that have ended
        result["posts"] = dict(publishing.publish_due())  # a safety net under the per-post retry tasks
        return result
    finally:
        schedule_keepalive()  # even after a failed sweep, the chain goes on


@task()
def publish_post(post_id: int) -> str:
    """One more attempt at a post that is waiting for a retry (the attempt schedules the next one if needed)."""
    from integrations.bluesky import publishing
    from integrations.exceptions import PostBusy, PostGone
    from integrations.models import Post

    if not Post.objects.filter(pk=post_id, status=Post.Status.WAITING).exists():
        return "nothing to do"
    try:
        outcome = publishing.publish(post_id, retry=True)
    except PostBusy:
        return "busy"  # another worker holds it; that one schedules what comes next
    except PostGone:
        return "deleted"  # its owner deleted it meanwhile
    return outcome.post.status


@task()
def publish_due_posts() -> dict:
    """Publish every due post (scheduled, waiting to retry, or abandoned by a dead worker), then schedule the next
    run in `INTEGRATIONS_SCHEDULE_INTERVAL` seconds. Any number of workers may run it: each post is claimed once."""
    from integrations.bluesky import publishing

    try:
        return dict(publishing.publish_due())
    finally:
        schedule_publishing()  # even after a failed run, the chain goes on


@task()
def publish_scheduled_post(post_id: int) -> dict:
    """Run at a scheduled post's time, so it goes out then rather than at the next `publish_due_posts`: publishes
    whatever is due (the post was rescheduled or cancelled since? then it is not due, and nothing happens to it)."""
    from integrations.bluesky import publishing

    return dict(publishing.publish_due())


@task()
def build_link_cards(post_id: int) -> int:
    """Read a scheduled post's link cards off the request that accepted it, and replan the post with them while it
    is still scheduled and was never attempted (`publishing.build_pending_cards`); how many parts took theirs."""
    from integrations.bluesky import publishing

    return publishing.build_pending_cards(post_id)
