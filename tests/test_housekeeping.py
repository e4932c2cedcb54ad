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
from integrations.bluesky.accounts import keepalive
from integrations.bluesky.posts import media
from integrations.bluesky.posts.accept import PartRequest, accept, edit
from integrations.bluesky.posts.deletion import delete
from integrations.bluesky.posts.schedule import cancel, reschedule
from integrations.models import ChannelEvent, Post
from integrations.posting.due import next_due_at
from integrations.tasks import (
    PUBLISH_DUE_PATH,
    PUBLISH_POST_PATH,
    PUBLISH_SCHEDULED_PATH,
    TASK_PATH,
    publish_post,
    publish_scheduled_post,
)
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

    monkeypatch.setattr(media, "purge_unused_media", broken_purge)
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


# --- a post's waiting runs -----------------------------------------------------------------------------------------
def waiting_for(post) -> list:
    runs = DBTaskResult.objects.filter(
        status=TaskResultStatus.READY, task_path__in=[PUBLISH_SCHEDULED_PATH, PUBLISH_POST_PATH]
    )
    return sorted(r.run_after for r in runs if r.args_kwargs["args"] == [post.pk])


def chain_runs() -> list:
    runs = DBTaskResult.objects.filter(status=TaskResultStatus.READY, task_path=PUBLISH_DUE_PATH)
    return list(runs.values_list("run_after", flat=True))


@pytest.fixture
def scheduling(user, django_capture_on_commit_callbacks, settings):
    settings.INTEGRATIONS_SCHEDULE_INTERVAL = 600
    channel = make_channels(user, 1)[0]

    def schedule(text: str, hours: float = 2) -> Post:
        with django_capture_on_commit_callbacks(execute=True):
            when = timezone.now() + timedelta(hours=hours)
            return accept(user, channel, [PartRequest(text=text, link_card=None)], scheduled_at=when)

    return schedule


@pytest.mark.django_db
def test_scheduled_posts_wait_in_no_task_of_their_own_and_the_recurring_run_comes_at_the_next_ones_time(
    scheduling, django_capture_on_commit_callbacks
):
    """The worker reads every waiting task each time it looks for work: a task per scheduled post, waiting for
    days, would make that grow with the posts. One waiting run of publish_due_posts serves them all."""
    far = scheduling("in two hours", hours=2)
    assert waiting_for(far) == []
    [run] = chain_runs()  # started by the scheduling, since none was waiting: the interval comes first
    assert timedelta(seconds=590) < run - timezone.now() <= timedelta(seconds=600)
    near = scheduling("in three minutes", hours=0.05)
    assert waiting_for(near) == [] and chain_runs() == [near.scheduled_at]  # brought forward to the next post
    sooner = timezone.now() + timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        reschedule(far, sooner)
    assert chain_runs() == [sooner]


@pytest.mark.django_db
def test_a_waiting_run_left_for_a_post_goes_with_it(scheduling):
    """Cancelling, rescheduling or deleting a post removes the runs still waiting for it alone: a wake-up an
    earlier version enqueued at its time, or a retry."""
    post, other = scheduling("mine"), scheduling("another post", hours=3)
    for each in (post, other):  # as earlier versions did
        publish_scheduled_post.using(run_after=each.scheduled_at).enqueue(each.pk)
    later = timezone.now() + timedelta(days=1)
    reschedule(post, later)
    assert waiting_for(post) == []
    publish_scheduled_post.using(run_after=later).enqueue(post.pk)
    cancel(Post.objects.get(pk=post.pk))
    assert waiting_for(post) == []
    assert waiting_for(other) == [other.scheduled_at]  # another post's run stays


@pytest.mark.django_db
def test_an_edit_in_the_composer_moves_the_waiting_run_to_the_new_time_and_keeps_when_the_post_was_written(
    scheduling, django_capture_on_commit_callbacks
):
    """The web's edit replaces a scheduled post's content and time (`edit`): the wake-up an earlier
    version left at the old time goes, the one recurring run comes at the new time, and the post keeps its
    `created_at` (its place among what was written)."""
    post = scheduling("first words", hours=5)
    publish_scheduled_post.using(run_after=post.scheduled_at).enqueue(post.pk)  # as earlier versions did
    sooner = timezone.now() + timedelta(minutes=2)
    with django_capture_on_commit_callbacks(execute=True):
        edited = edit(post, [PartRequest(text="second words", link_card=None)], scheduled_at=sooner)
    assert edited.pk == post.pk and edited.created_at == post.created_at
    assert edited.parts.get().text == "second words"
    assert waiting_for(post) == [] and chain_runs() == [sooner]


@pytest.mark.django_db
def test_a_cancelled_post_stays_listed_and_no_run_waits_for_it(scheduling):
    post = scheduling("to be cancelled")
    publish_scheduled_post.using(run_after=post.scheduled_at).enqueue(post.pk)
    cancelled = cancel(Post.objects.get(pk=post.pk))
    assert cancelled.status == Post.Status.CANCELLED and cancelled.cancelled_at is not None
    assert waiting_for(post) == []
    assert next_due_at(timezone.now()) is None  # the recurring run is not brought forward for it


@pytest.mark.django_db
def test_deleting_a_post_that_waits_for_a_retry_removes_its_retry(scheduling):
    post = scheduling("waits")
    retry_at = timezone.now() + timedelta(minutes=5)
    Post.objects.filter(pk=post.pk).update(status=Post.Status.WAITING, next_attempt_at=retry_at)
    publish_post.using(run_after=retry_at).enqueue(post.pk)
    assert waiting_for(post) == [retry_at]
    delete(Post.objects.get(pk=post.pk))
    assert waiting_for(post) == []
