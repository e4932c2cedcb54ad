"""Refresh is serialised across threads and processes: many callers on an expired access token, one refresh.

Runs on whatever database the suite runs on (SQLite by default; PostgreSQL in CI's second run).
"""

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone

from integrations.bluesky import services
from integrations.bluesky.accounts import door
from integrations.models import Channel

pytestmark = [pytest.mark.pds, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def expire_access_token(channel: Channel) -> None:
    Channel.objects.filter(pk=channel.pk).update(access_expires_at=timezone.now() - timedelta(minutes=1))


def run_threads(count: int, target) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def worker(index: int) -> None:
        try:
            own = Channel.objects.get(pk=target.pk)
            barrier.wait()
            results[index] = door.call(own, lambda client, token: client.get_session(token)["did"])
        except Exception as exc:  # reported through the results
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_twenty_threads_on_an_expired_access_token_refresh_once(channel, use_pds, account):
    expire_access_token(channel)
    results = run_threads(20, channel)
    assert results == [account.did] * 20
    assert use_pds.refresh_count(account.did) == 1
    row = Channel.objects.get(pk=channel.pk)
    assert row.refresh_jwt != channel.refresh_jwt
    assert row.access_expires_at > timezone.now() + timedelta(hours=1)
    assert row.events.filter(kind="refreshed").count() == 1


def test_twenty_threads_on_a_rejected_access_token_refresh_once(channel, use_pds, account):
    """Reactive path: the PDS rejects the access token (signature broken), every thread retries once."""
    header, payload, signature = channel.access_jwt.split(".")
    broken = f"{header}.{payload}.{signature[::-1]}"
    Channel.objects.filter(pk=channel.pk).update(access_jwt=broken)  # the field encrypts on update too
    results = run_threads(20, channel)
    assert results == [account.did] * 20
    assert use_pds.refresh_count(account.did) == 1


def database_url() -> str:
    """The test database as a URL, for worker processes."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    host, port = settings.get("HOST") or "127.0.0.1", settings.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings['NAME']}"


def test_four_processes_on_an_expired_access_token_refresh_once(channel, use_pds, account, monkeypatch):
    expire_access_token(channel)
    env = {**os.environ, "TEST_DATABASE_URL": database_url(), "BLUESKY_SERVICE_URL": use_pds.url}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.lifecycle_worker", str(channel.pk)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for worker in workers:
            line = worker.stdout.readline()
            assert line.strip() == "ready", worker.stderr.read()
        for worker in workers:  # all four start their call at (nearly) the same moment
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outcomes = []
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert outcomes == [{"ok": True}] * 4
    assert use_pds.refresh_count(account.did) == 1
    assert Channel.objects.get(pk=channel.pk).events.filter(kind="refreshed").count() == 1


def test_simultaneous_connects_of_one_account_make_one_channel(use_pds, account, user):
    second_password = use_pds.create_app_password(account)
    barrier = threading.Barrier(2)
    outcomes = []

    def connect(password):
        try:
            barrier.wait()
            outcomes.append(services.connect(user, account.handle, password).pk)
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=connect, args=(p,)) for p in (account.app_passwords[0], second_password)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 2 and all(isinstance(o, int) for o in outcomes), outcomes
    assert Channel.objects.filter(user=user).count() == 1
    assert outcomes[0] == outcomes[1]
