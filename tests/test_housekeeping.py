"""What would otherwise grow without bound or stop for good: the keep-alive chain survives a failing step (and a
worker that dies mid-sweep), old events and finished task results are pruned, and a post's waiting wake-ups go with
the post (issue 16 item 20, issue 24)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations import retention
from integrations.bluesky import keepalive, publishing
from integrations.bluesky.publishing import PartRequest
from integrations.models import ChannelEvent, Post
from integrations.tasks import PUBLISH_POST_PATH, PUBLISH_SCHEDULED_PATH, TASK_PATH, publish_post
from tests.test_pagination import make_channels


def run_worker() -> None:
    call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0.1", stdout=StringIO())


def event(channel, days_ago: float, detail: str = "") -> ChannelEvent:
    created = timezone.now() - timedelta(days=days_ago)
    return ChannelEvent.objects.create(
        channel=channel, kind=ChannelEvent.Kind.REFRESHED, detail=detail, created_at=created
    )


def waiting_sweeps():
    return DBTaskResult.objects.filter(task_path=TASK_PATH, status=TaskResultStatus.READY)


# --- the keep-alive chain ------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_next_sweep_waits_in_the_queue_before_this_one_starts_its_work(monkeypatch):
    """Should the worker die in the middle of a sweep (killed, out of memory), the chain still goes on."""
    seen = []

    def sweep(**kwargs):
        seen.append(list(waiting_sweeps().values_list("run_after", flat=True)))
        return keepalive.SweepResult()

    monkeypatch.setattr(keepalive, "sweep", sweep)
    call_command("bluesky_keepalive", "--schedule", stdout=StringIO())
    run_worker()
    [waiting_then] = seen
    assert len(waiting_then) == 1 and waiting_then[0] > timezone.now() + timedelta(hours=1)
    assert waiting_sweeps().count() == 1  # and no second one after the sweep


@pytest.mark.django_db(transaction=True)
def test_a_step_that_raises_stops_neither_the_other_steps_nor_the_chain(monkeypatch, user):
    channel = make_channels(user, 1)[0]
    old, recent = event(channel, 200, "old"), event(channel, 1, "recent")

    def broken_purge(*args, **kwargs):
        raise RuntimeError("the media storage went away")

    monkeypatch.setattr(publishing, "purge_unused_media", broken_purge)
    call_command("bluesky_keepalive", "--schedule", stdout=StringIO())
    run_worker()

    result = DBTaskResult.objects.get(task_path=TASK_PATH, status=TaskResultStatus.FAILED)
    assert "the media storage went away" in result.traceback  # the run says what failed
    assert not ChannelEvent.objects.filter(pk=old.pk).exists()  # a step after the failed one still ran
    assert ChannelEvent.objects.filter(pk=recent.pk).exists()
    [waiting] = waiting_sweeps()
    assert waiting.run_after > timezone.now() + timedelta(hours=1)


# --- retention -----------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_events_older_than_the_retention_are_pruned_in_batches(user, settings, monkeypatch):
    channel = make_channels(user, 1)[0]
    settings.INTEGRATIONS_EVENTS_RETENTION_DAYS = 30
    monkeypatch.setattr(retention, "BATCH", 2)
    old = [event(channel, 31 + n) for n in range(5)]
    kept = [event(channel, 29), event(channel, 0)]
    assert retention.prune_events() == len(old)
    assert set(ChannelEvent.objects.values_list("pk", flat=True)) == {e.pk for e in kept}
    settings.INTEGRATIONS_EVENTS_RETENTION_DAYS = 0  # kept forever
    event(channel, 400)
    assert retention.prune_events() == 0


def task_result(status: str, *, days_ago: float, path: str = "integrations.tasks.publish_due_posts") -> DBTaskResult:
    when = timezone.now() - timedelta(days=days_ago)
    finished = when if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED) else None
    return DBTaskResult.objects.create(
        status=status,
        args_kwargs={"args": [], "kwargs": {}},
        task_path=path,
        backend_name="default",
        run_after=when,
        finished_at=finished,
        exception_class_path="",
        traceback="",
    )


@pytest.mark.django_db
def test_finished_task_results_older_than_the_retention_are_pruned_and_waiting_ones_never(settings):
    settings.INTEGRATIONS_TASK_RESULTS_RETENTION_DAYS = 7
    old = [task_result(TaskResultStatus.SUCCESSFUL, days_ago=8), task_result(TaskResultStatus.FAILED, days_ago=30)]
    kept = [
        task_result(TaskResultStatus.SUCCESSFUL, days_ago=6),
        task_result(TaskResultStatus.READY, days_ago=30),  # waiting, however old: never touched
        task_result(TaskResultStatus.RUNNING, days_ago=30),
    ]
    assert retention.prune_task_results() == len(old)
    assert set(DBTaskResult.objects.values_list("pk", flat=True)) == {r.pk for r in kept}
    settings.INTEGRATIONS_TASK_RESULTS_RETENTION_DAYS = 0
    task_result(TaskResultStatus.SUCCESSFUL, days_ago=100)
    assert retention.prune_task_results() == 0


# --- a post's wake-ups ---------------------------------------------------------------------------------------------
def wake_ups(post) -> list:
    runs = DBTaskResult.objects.filter(
        status=TaskResultStatus.READY, task_path__in=[PUBLISH_SCHEDULED_PATH, PUBLISH_POST_PATH]
    )
    return sorted(r.run_after for r in runs if r.args_kwargs["args"] == [post.pk])


@pytest.fixture
def scheduling(user, django_capture_on_commit_callbacks):
    channel = make_channels(user, 1)[0]

    def schedule(text: str, hours: float = 2) -> Post:
        with django_capture_on_commit_callbacks(execute=True):
            when = timezone.now() + timedelta(hours=hours)
            return publishing.accept(user, channel, [PartRequest(text=text, link_card=None)], scheduled_at=when)

    return schedule


@pytest.mark.django_db
def test_a_scheduled_posts_wake_up_moves_with_it_and_goes_when_it_is_cancelled(
    scheduling, django_capture_on_commit_callbacks
):
    post, other = scheduling("mine"), scheduling("another post", hours=3)
    assert wake_ups(post) == [post.scheduled_at]
    later = timezone.now() + timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        publishing.reschedule(post, later)
    assert wake_ups(post) == [later]  # the one at the old time is gone
    with django_capture_on_commit_callbacks(execute=True):
        publishing.edit(post, [PartRequest(text="mine, edited", link_card=None)])
    assert wake_ups(post) == [later]
    publishing.cancel(post)
    assert wake_ups(post) == []
    assert wake_ups(other) == [other.scheduled_at]  # another post's wake-up stays


@pytest.mark.django_db
def test_deleting_a_post_that_waits_for_a_retry_removes_its_retry(scheduling, django_capture_on_commit_callbacks):
    post = scheduling("waits")
    retry_at = timezone.now() + timedelta(minutes=5)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.WAITING, next_attempt_at=retry_at)
    DBTaskResult.objects.filter(task_path=PUBLISH_SCHEDULED_PATH).delete()  # it ran: the post fell due and waits
    publish_post.using(run_after=retry_at).enqueue(post.pk)
    assert wake_ups(post) == [retry_at]
    publishing.delete(Post.objects.get(pk=post.pk))
    assert wake_ups(post) == []
