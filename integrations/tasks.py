"""Background tasks (Django's Tasks framework; the project uses the django-tasks-db backend).

On top of the domain: it hears what the post lifecycle asks for through signals (`connect`, called from the app's
`ready()`); nothing below imports this module.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.tasks import TaskResultStatus, task
from django.utils import timezone

from integrations import retention
from integrations.bluesky.accounts import keepalive
from integrations.bluesky.posts import cards, media, submit
from integrations.conf import app_settings
from integrations.exceptions import PostBusy, PostGone
from integrations.models import Post
from integrations.posting import due, signals
from integrations.security import throttling

logger = logging.getLogger(__name__)

TASK_PATH = "integrations.tasks.keepalive_sweep"
PUBLISH_DUE_PATH = "integrations.tasks.publish_due_posts"
PUBLISH_POST_PATH = "integrations.tasks.publish_post"
PUBLISH_SCHEDULED_PATH = "integrations.tasks.publish_scheduled_post"


def _interval() -> timedelta:
    return timedelta(seconds=app_settings.KEEPALIVE_INTERVAL)


def _enqueue_once(
    task_obj: Any, task_path: str, run_after: Callable[[], datetime], *, bring_forward: bool = False
) -> bool:
    """Enqueue a chained task (at `run_after()`) unless one of its runs is already waiting; True when one was
    enqueued. `bring_forward`: a run waiting until later is moved to `run_after()` instead."""
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # another backend: let it deduplicate
        DBTaskResult = None
    when = run_after()
    # Any run still waiting, due now or later (`ready()` would miss one scheduled for later).
    waiting = DBTaskResult and DBTaskResult.objects.filter(status=TaskResultStatus.READY, task_path=task_path)
    if waiting and waiting.exists():
        if bring_forward:  # a run a worker has just taken is no longer READY: it is left alone
            waiting.filter(run_after__gt=when).update(run_after=when)
        return False
    task_obj.using(run_after=when).enqueue()
    return True


def cancel_wake_ups(post_id: int, due_times: Iterable[datetime | None]) -> int:
    """Remove the runs waiting for one post (a retry at its retry time, a wake-up at its scheduled time that an
    earlier version enqueued) when the post is cancelled, rescheduled or deleted: otherwise each would wait in the
    task table until its time, then do nothing. `due_times`: when they were enqueued to run (the post's
    `scheduled_at` and `next_attempt_at` as they were); the task table's index of waiting runs is entered by that
    time, so this costs the same however many runs wait. Call it inside the transaction that changes the post. How
    many were removed (0 with another backend: its runs find nothing to do)."""
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
    delay = delay if delay is not None else _interval()
    return _enqueue_once(keepalive_sweep, TASK_PATH, lambda: timezone.now() + delay)


def schedule_interval() -> timedelta:
    return timedelta(seconds=app_settings.SCHEDULE_INTERVAL)


def schedule_publishing(delay: timedelta | None = None) -> bool:
    """Have `publish_due_posts` run when the next post falls due, or after `INTEGRATIONS_SCHEDULE_INTERVAL` seconds
    if that is sooner (after `delay`, when given); a run already waiting until later is brought forward. True when a
    run was enqueued.

    So one waiting run serves every scheduled post, whenever it is due: a task per post, waiting days in the task
    table, would make every look of the worker for work read them all. Two workers starting at once may enqueue two
    runs; the chains merge, since a run schedules the next one only when none is waiting."""

    def run_after() -> datetime:
        now = timezone.now()
        if delay is not None:
            return now + delay
        soonest = due.next_due_at(now)
        return min(soonest, now + schedule_interval()) if soonest else now + schedule_interval()

    return _enqueue_once(publish_due_posts, PUBLISH_DUE_PATH, run_after, bring_forward=True)


def _keepalive_steps() -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("sessions", lambda: keepalive.sweep().as_dict()),
        ("media_removed", media.purge_unused_media),  # uploads no post used within a day
        ("rate_counters_removed", throttling.prune_counters),  # windows that have ended
        ("posts", lambda: dict(submit.publish_due())),  # a safety net under the per-post retry tasks
        ("events_removed", retention.prune_events),
        ("task_results_removed", retention.prune_task_results),
        ("publishing_scheduled", schedule_publishing),  # restarts the chain of due-post runs if it ever stopped
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
    if not Post.objects.filter(pk=post_id, status=Post.Status.WAITING).exists():
        return "nothing to do"
    try:
        outcome = submit.publish(post_id, retry=True)
    except PostBusy:
        return "busy"  # another worker holds it; that one schedules what comes next
    except PostGone:
        return "deleted"  # its owner deleted it meanwhile
    return outcome.post.status


@task()
def publish_due_posts() -> dict:
    """Publish every due post (scheduled, waiting to retry, or abandoned by a dead worker), then schedule the next
    run in `INTEGRATIONS_SCHEDULE_INTERVAL` seconds. Any number of workers may run it: each post is claimed once."""
    try:
        schedule_publishing()  # first, so the chain goes on even if this run never finishes (a killed worker)
    except Exception:  # the database is away? tried again at the end
        logger.exception("could not schedule the next run of publish_due_posts before this one")
    try:
        return dict(submit.publish_due())
    finally:
        schedule_publishing()  # a no-op when the run above was enqueued


@task()
def publish_scheduled_post(post_id: int) -> dict:
    """A wake-up at one scheduled post's time, as earlier versions enqueued one per post (now `schedule_publishing`
    brings the recurring run forward instead); kept so the runs they left waiting still work: publishes whatever is
    due (the post was rescheduled or cancelled since? then it is not due, and nothing happens to it)."""
    return dict(submit.publish_due())


@task()
def build_link_cards(post_id: int) -> int:
    """Read a scheduled post's link cards off the request that accepted it, and replan the post with them while it
    is still scheduled and was never attempted (`cards.build_pending_cards`); how many parts took theirs."""
    return cards.build_pending_cards(post_id)


# --- what the domain asks for (connected by `connect`) -----------------------------------------------------------
def _enqueue_retry(sender: type, post: Post, **kwargs: Any) -> None:
    """`posting.signals.retry_wanted` (on commit): the next attempt when the post is due again."""
    publish_post.using(run_after=post.next_attempt_at).enqueue(post.pk)


def _bring_forward(sender: type, **kwargs: Any) -> None:
    """`posting.signals.due_soon` (on commit): a scheduled post falls due; the due-post run comes at its time."""
    schedule_publishing()


def _cancel_wake_ups(sender: type, post: Post, due_times: Iterable[datetime | None], **kwargs: Any) -> None:
    """`posting.signals.wake_ups_obsolete` (inside the transaction that changes the post)."""
    cancel_wake_ups(post.pk, due_times)


def _enqueue_cards(sender: type, post: Post, **kwargs: Any) -> None:
    """`cards.cards_pending` (on commit): a scheduled post's link cards, read by a worker as soon as it can."""
    build_link_cards.enqueue(post.pk)


def connect() -> None:
    """Connect the tasks to the signals the domain sends (once; the app's `ready()` calls it)."""
    signals.retry_wanted.connect(_enqueue_retry, sender=Post, dispatch_uid="integrations.tasks.retry")
    signals.due_soon.connect(_bring_forward, sender=Post, dispatch_uid="integrations.tasks.due_soon")
    signals.wake_ups_obsolete.connect(_cancel_wake_ups, sender=Post, dispatch_uid="integrations.tasks.wake_ups")
    cards.cards_pending.connect(_enqueue_cards, sender=Post, dispatch_uid="integrations.tasks.cards")
