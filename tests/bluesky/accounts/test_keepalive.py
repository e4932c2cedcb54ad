"""Keep-alive: due sessions are refreshed in the background, once, even when two sweeps overlap."""

import os
import subprocess
import sys
import threading
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.bluesky import services
from integrations.bluesky.accounts import keepalive
from integrations.models import Channel
from integrations.tasks import TASK_PATH, keepalive_sweep
from tests.system.test_concurrency import ROOT, database_url

TEST_KEY = os.environ["INTEGRATIONS_ENCRYPTION_KEYS"].split(",")[0]

pytestmark = pytest.mark.pds


def make_channel(pds, user):
    acct = pds.create_account()
    password = pds.create_app_password(acct)
    return services.connect(user, acct.handle, password), acct


def age(channel, **fields):
    Channel.objects.filter(pk=channel.pk).update(**fields)


@pytest.mark.django_db
def test_due_selection(use_pds, user):
    now = timezone.now()
    fresh, _ = make_channel(use_pds, user)
    age(fresh, refreshed_at=now - timedelta(days=1))
    ending, _ = make_channel(use_pds, user)
    age(ending, refresh_expires_at=now + timedelta(days=3), refreshed_at=now - timedelta(days=1))
    stale, _ = make_channel(use_pds, user)
    age(stale, refreshed_at=now - timedelta(days=10))
    never, _ = make_channel(use_pds, user)
    age(never, connected_at=now - timedelta(days=8), refreshed_at=None)
    waiting, _ = make_channel(use_pds, user)
    age(waiting, refreshed_at=now - timedelta(days=10), status="degraded", next_retry_at=now + timedelta(minutes=5))
    retry_now, _ = make_channel(use_pds, user)
    age(retry_now, refreshed_at=now - timedelta(days=10), status="degraded", next_retry_at=now - timedelta(minutes=1))
    gone, _ = make_channel(use_pds, user)
    services.disconnect(gone)
    age(gone, refreshed_at=now - timedelta(days=10))

    due = set(keepalive.channels_due().values_list("pk", flat=True))
    assert due == {ending.pk, stale.pk, never.pk, retry_now.pk}


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_sweeps_refresh_each_channel_once(use_pds, user):
    channels = []
    for _ in range(6):
        channel, acct = make_channel(use_pds, user)
        age(channel, refreshed_at=timezone.now() - timedelta(days=10))
        channels.append((channel, acct))

    results = []

    def run():
        try:
            results.append(keepalive.sweep(concurrency=3))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sum(r.refreshed for r in results) == 6
    assert all(not r.failed for r in results)
    for channel, acct in channels:
        assert use_pds.refresh_count(acct.did) == 1
        row = Channel.objects.get(pk=channel.pk)
        assert row.refreshed_at > timezone.now() - timedelta(minutes=1)
        assert row.refresh_jwt != channel.refresh_jwt
    # Nothing is due any more: a third sweep does nothing.
    assert keepalive.sweep().due == 0


# Sweeps refresh from worker threads with their own connections: the data must be committed (transaction=True).
@pytest.mark.django_db(transaction=True)
def test_sweep_keeps_going_past_a_dead_session(use_pds, user):
    ok, ok_acct = make_channel(use_pds, user)
    dead, _ = make_channel(use_pds, user)
    for channel in (ok, dead):
        age(channel, refreshed_at=timezone.now() - timedelta(days=10))
    use_pds.delete_session(dead.refresh_jwt)

    result = keepalive.sweep()
    assert result.refreshed == 1
    assert result.failed == {"session_expired": 1}
    assert Channel.objects.get(pk=dead.pk).status == Channel.Status.NEEDS_RECONNECTION
    assert Channel.objects.get(pk=ok.pk).status == Channel.Status.ACTIVE
    assert use_pds.refresh_count(ok_acct.did) == 1


@pytest.mark.django_db(transaction=True)
def test_management_command_reports_the_sweep(use_pds, user):
    channel, acct = make_channel(use_pds, user)
    age(channel, refreshed_at=timezone.now() - timedelta(days=10))
    out = StringIO()
    call_command("bluesky_keepalive", stdout=out)
    assert "1 due, 1 refreshed, 0 already fresh, failed: none" in out.getvalue()
    assert use_pds.refresh_count(acct.did) == 1


@pytest.mark.django_db(transaction=True)
def test_background_task_runs_in_the_db_worker_and_schedules_the_next(use_pds, user):
    channel, acct = make_channel(use_pds, user)
    age(channel, refreshed_at=timezone.now() - timedelta(days=10))

    out = StringIO()
    call_command("bluesky_keepalive", "--schedule", stdout=out)
    assert "enqueued" in out.getvalue()
    call_command("bluesky_keepalive", "--schedule", stdout=out)
    assert "already queued" in out.getvalue()

    call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0.1", stdout=StringIO())

    finished = DBTaskResult.objects.filter(task_path=TASK_PATH).exclude(finished_at=None).get()
    assert finished.return_value["refreshed"] == 1
    assert use_pds.refresh_count(acct.did) == 1
    # The next sweep waits in the queue, hours from now.
    pending = DBTaskResult.objects.filter(status="READY", task_path=TASK_PATH).get()
    assert pending.run_after > timezone.now() + timedelta(hours=1)
    # Scheduling again while that one waits adds nothing.
    call_command("bluesky_keepalive", "--schedule", stdout=out)
    assert DBTaskResult.objects.filter(status="READY", task_path=TASK_PATH).count() == 1
    assert keepalive_sweep.name == "keepalive_sweep"


@pytest.mark.django_db(transaction=True)
def test_a_broken_channel_does_not_stop_the_sweep_and_the_next_sweep_is_scheduled(use_pds, user, settings):
    good, good_acct = make_channel(use_pds, user)
    broken, _ = make_channel(use_pds, user)
    for channel in (good, broken):
        age(channel, refreshed_at=timezone.now() - timedelta(days=10))
    # The broken row's token was encrypted with a key this server no longer has.
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    Channel.objects.filter(pk=broken.pk).update(refresh_jwt="written-with-a-lost-key")
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [TEST_KEY]

    result = keepalive.sweep()
    assert result.refreshed == 1
    assert result.failed == {"session_unreadable": 1}  # a state the app understands (security/test_key_rotation.py)
    assert use_pds.refresh_count(good_acct.did) == 1


@pytest.mark.django_db(transaction=True)
def test_next_sweep_is_scheduled_even_when_a_sweep_fails(use_pds, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(keepalive, "sweep", crash)
    call_command("bluesky_keepalive", "--schedule", stdout=StringIO())
    call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0.1", stdout=StringIO())
    assert DBTaskResult.objects.filter(task_path=TASK_PATH, status="FAILED").count() == 1
    waiting = DBTaskResult.objects.filter(task_path=TASK_PATH, status="READY").get()
    assert waiting.run_after > timezone.now() + timedelta(hours=1)


@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_sweeping_at_once_refresh_each_channel_once(use_pds, user):
    """Two keep-alive processes (two db_workers on one database) overlap: the row lock makes each refresh
    happen once. Threads of one process would be serialised by the in-process lock; processes are not."""
    accounts = []
    for _ in range(5):
        channel, acct = make_channel(use_pds, user)
        age(channel, refreshed_at=timezone.now() - timedelta(days=10))
        accounts.append(acct)
    env = {**os.environ, "TEST_DATABASE_URL": database_url(), "BLUESKY_SERVICE_URL": use_pds.url}
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "bluesky_keepalive"],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings_test"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    for acct in accounts:
        assert use_pds.refresh_count(acct.did) == 1
    refreshed = sum(int(out.split(" due, ")[1].split(" refreshed")[0]) for out, _ in outputs)
    assert refreshed == 5
