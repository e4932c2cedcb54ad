"""Rate limits cannot be reset by anyone's traffic, hold across processes, and survive the rollback of the request
that counted them (issue 16, item 6)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from integrations import checks
from integrations.models import Channel, RateCounter
from integrations.security import throttling
from integrations.security.throttling import over_rate, shared_cache
from tests.system.test_concurrency import database_url

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 3600


def connect(client, identifier: str, password: str):
    return client.post("/api/v1/channels/bluesky/", {"identifier": identifier, "app_password": password}, format="json")


@pytest.mark.pds
@pytest.mark.django_db
def test_other_users_cache_traffic_cannot_reset_a_used_up_connect_limit(use_pds, account, api, settings):
    """What the attack did: filled the shared cache (link-card previews) until the file cache culled, then tried
    five more wrong passwords."""
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (3, WINDOW)}
    for _ in range(3):
        assert connect(api, account.handle, "wrong-wrong-wrong-wrong").status_code == 400
    assert connect(api, account.handle, "wrong-wrong-wrong-wrong").status_code == 429
    cache = shared_cache()
    for index in range(1500):  # five times the file cache's 300 entries
        cache.set(f"integrations:linkcard:flood-{index}", "x" * 100, 3600)
    answers = [connect(api, account.handle, "wrong-wrong-wrong-wrong").status_code for _ in range(5)]
    assert answers == [429] * 5


@pytest.mark.django_db(transaction=True)
def test_a_limit_holds_exactly_across_processes():
    """Four processes hit one limit at once: the counter counts every hit, and exactly `limit` get through."""
    env = {**os.environ, "TEST_DATABASE_URL": database_url()}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.ratelimit_worker", "50", "120"],
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
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        allowed = []
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            allowed.append(int(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert sum(allowed) == 120
    assert RateCounter.objects.get().count == 200


@pytest.mark.django_db
def test_ended_windows_are_pruned():
    assert over_rate("test-prune", "a", 5, 60, now=1_000) is None
    assert over_rate("test-prune", "a", 5, 60, now=10_000) is None
    assert throttling.prune_counters(now=5_000) == 1
    assert RateCounter.objects.count() == 1


@pytest.mark.django_db
def test_a_very_long_scope_or_ident_still_counts():
    ident = "x" * 500
    for _ in range(2):
        assert over_rate("test-long", ident, 2, 60, now=1_000) is None
    assert over_rate("test-long", ident, 2, 60, now=1_000) == 20
    assert over_rate("test-long", ident + "y", 2, 60, now=1_000) is None


@pytest.mark.pds
@pytest.mark.django_db(transaction=True)
def test_a_refused_api_call_counts_even_when_its_request_is_rolled_back(use_pds, account, user, settings):
    """ATOMIC_REQUESTS rolls a refused API call back; its connect attempt happened all the same."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite takes one writer at a time: check --deploy warns instead (see below)")
    settings.INTEGRATIONS_CONNECT_RATES = {"user": (2, WINDOW)}
    client = APIClient()
    client.force_authenticate(user)
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        answers = [connect(client, account.handle, "wrong-wrong-wrong-wrong").status_code for _ in range(3)]
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False
        throttling._close_side_connections()
    assert answers == [400, 400, 429]
    assert not Channel.objects.exists()


def test_check_deploy_says_sqlite_with_atomic_requests_cannot_count_refused_calls(settings):
    assert checks.check_rate_limits_survive_rollbacks() == []
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3", "ATOMIC_REQUESTS": True}
    from django.db import connections

    original = connections.settings
    connections.settings = {**original, "default": {**original["default"], **sqlite}}
    try:
        [warning] = checks.check_rate_limits_survive_rollbacks()
    finally:
        connections.settings = original
    assert warning.id == "integrations.W008" and "ATOMIC_REQUESTS" in warning.msg and "PostgreSQL" in warning.hint


def test_the_warning_is_a_deploy_check(settings):
    from django.core import checks as django_checks

    assert checks.check_rate_limits_survive_rollbacks in django_checks.registry.registry.get_checks(
        include_deployment_checks=True
    )
    assert checks.check_rate_limits_survive_rollbacks not in django_checks.registry.registry.get_checks()
    call_command("check", "--deploy", "--fail-level", "CRITICAL", verbosity=0)
