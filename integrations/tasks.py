"""Background tasks (Django's Tasks framework; the project uses the django-tasks-db backend)."""

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.tasks import TaskResultStatus, task
from django.utils import timezone

from integrations.bluesky import keepalive
from integrations.conf import app_settings

logger = logging.getLogger(__name__)

TASK_PATH = "integrations.tasks.keepalive_sweep"
PUBLISH_DUE_PATH = "integrations.tasks.publish_due_posts"
PUBLISH_POST_PATH = "integrations.tasks.publish_post"
PUBLISH_SCHEDULED_PATH = "integrations.tasks.publish_scheduled_post"


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


def cancel_wake_ups(post_id: int, due_times: Iterable[datetime | None]) -> int:
    """Remove the runs waiting for one post (its wake-up at its scheduled time, a retry at its retry time) when the
    post is cancelled, rescheduled or deleted: otherwise each would wait in the task table until its time, then do
    nothing. `due_times`: when they were enqueued to run (the post's `scheduled_at` and `next_attempt_at` as they
    were); the task table's index of waiting runs is entered by that time, so this costs the same however many runs
    wait. Call it inside the transaction that changes the post. How many were removed (0 with another backend: its
    runs find nothing to do)."""
    times = [when for when in due_times if when is not None]
    if not times:
        return 0
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:
        return 0
    waiting = DBTaskResult.objects.filter(
        status=TaskResultStatus.READY,
        priority=publish_scheduled_post.priority,
        run_after__in=times,
        task_path__in=[PUBLISH_SCHEDULED_PATH, PUBLISH_POST_PATH],
        args_kwargs={"args": [post_id], "kwargs": {}},
    )
    deleted, _ = waiting.delete()
    return deleted


def schedule_keepalive(delay: timedelta | None = None) -> bool:
    """Enqueue the next sweep unless one is already waiting; True when one was enqueued."""
    return _enqueue_once(keepalive_sweep, TASK_PATH, timezone.now() + (delay if delay is not None else _interval()))


def schedule_publishing(delay: timedelta | None = None) -> bool:
    """Enqueue the next run of `publish_due_posts` unless one is already waiting; True when one was enqueued.

    Two workers starting at once may enqueue two runs; the chains merge, since a run schedules the next one only
    when none is waiting."""
    delay = delay if delay is not None else timedelta(seconds=int(app_settings.SCHEDULE_INTERVAL))
    return _enqueue_once(publish_due_posts, PUBLISH_DUE_PATH, timezone.now() + delay)


def _keepalive_steps() -> list[tuple[str, Callable[[], Any]]]:
    from integrations import retention
    from integrations.bluesky import publishing

    return [
        ("sessions", lambda: keepalive.sweep().as_dict()),
        ("media_removed", publishing.purge_unused_media),  # uploads no post used within a day
        ("posts", lambda: dict(publishing.publish_due())),  # a safety net under the per-post retry tasks
        ("events_removed", retention.prune_events),
        ("task_results_removed", retention.prune_task_results),
    ]


@task()
def keepalive_sweep() -> dict:
    """Refresh every due channel, remove stale unused uploads, publish what is overdue and prune old events and task
    results; the next sweep is scheduled first.

    Scheduled first, so the chain goes on even when this run never finishes (a worker killed half-way); each step
    runs even when an earlier one raised. A step that raised is logged, and the run then fails with its error (after
    the other steps), so the task's result says so.
    """
    try:
        schedule_keepalive()
    except Exception:  # the database is away? tried again at the end
        logger.exception("could not schedule the next keep-alive sweep before this one")
    try:
        result: dict[str, Any] = {}
        failed: list[Exception] = []
        for name, step in _keepalive_steps():
            try:
                outcome = step()
            except Exception as exc:
                logger.exception("keep-alive step %r failed", name)
                failed.append(exc)
                result[name] = "failed"
                continue
            if name == "sessions":
                result.update(outcome)
            else:
                result[name] = outcome
        if failed:
            raise failed[0]
        return result
    finally:
        schedule_keepalive()  # a no-op when the run above was enqueued


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
