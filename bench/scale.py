"""Scale benchmark (`make bench-scale`, or `python -m bench.scale [--rebuild] [--only TEXT]`): PostgreSQL only.

Two databases of realistic data, built in bulk with `generate_series` (encrypted fields hold real ciphertext: a few
tokens are encrypted once and the ciphertext reused):

- small: 2,000 channels, 20,100 posts (~25,500 parts), ~65,000 channel events;
- big: 100,000 channels, 1,000,100 posts (~1.27 M parts), ~3 M channel events.

Both hold the same two measured users: "solo" (10 channels, 100 posts) and "agency" (1,000 channels, 10,000 posts),
plus an administrator; one of solo's channels has 5,000 events. Every page, API list, admin page and background
query they (or a worker) hit is run on both, the runs interleaved (small, big, small, …) in one run: the median
time, the query count and the big/small ratio, side by side; then the query plan of every background query on the
big data. Targets: at most 1.5 times the time for 50 times the data, except what is linear by design (said in the
row); no background query scans posts or parts.

The databases (`skyport_bench_small`, `skyport_bench_big` on BENCH_SCALE_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/) are built once and reused while the script that fills them and the migrations
are unchanged (a marker table records their version); `--rebuild` builds them again. The big one takes about five
minutes to build. Upstream is never called: the PDS answers at once (a stub at `door.call`), so what is
measured is Skyport's own work.
"""

import argparse
import copy
import hashlib
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE_URL = os.environ.get("BENCH_SCALE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/").rstrip("/") + "/"
NAMES = {"small": "skyport_bench_small", "big": "skyport_bench_big"}
os.environ["TEST_DATABASE_URL"] = BASE_URL + NAMES["small"]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ["CACHE_URL"] = "locmemcache://"

import django  # noqa: E402

django.setup()

import logging  # noqa: E402

logging.getLogger("integrations").setLevel(logging.WARNING)
logging.getLogger("django.request").setLevel(logging.ERROR)

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402
from django.db.utils import load_backend  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from integrations import pagination, retention  # noqa: E402
from integrations.bluesky.accounts import door, feed, keepalive  # noqa: E402
from integrations.bluesky.posts.media import purge_unused_media  # noqa: E402
from integrations.bluesky.posts.submit import publish_due  # noqa: E402
from integrations.migration_operations import AddIndexConcurrently  # noqa: E402
from integrations.models import Channel, Post, PostPart, post_history_at  # noqa: E402
from integrations.posting.due import claim_due  # noqa: E402
from integrations.security import crypto, rotation  # noqa: E402
from integrations.tasks import PUBLISH_DUE_PATH, PUBLISH_POST_PATH, schedule_publishing  # noqa: E402

SIZES = {"small": {"channels": 2_000, "posts": 20_100}, "big": {"channels": 100_000, "posts": 1_000_100}}
SOLO_CHANNELS, AGENCY_CHANNELS = 10, 1_000
SOLO_POSTS, AGENCY_POSTS = 100, 10_000
EVENTS_PER_CHANNEL = 30
HEAVY_CHANNEL_EVENTS = 5_000
KEEPALIVE_DUE = 50  # channels whose session is due for a refresh, in both sizes
FINISHED_TASK_RESULTS = 7 * 2_880  # a week of publish_due_posts runs (every 30 s): what the retention keeps
TARGET = 1.5
PEAK_MIB = 50  # what a background step may hold in Python memory at its peak, on the big data


# --- building the data -------------------------------------------------------------------------------------------
def _url(name: str) -> str:
    return BASE_URL + name


_WRAPPERS: dict[str, Any] = {}


def use(size: str) -> None:
    """Point the default connection at one of the two databases. Each keeps its own open connection, so switching
    back and forth between runs costs nothing and finds its caches warm."""
    if size not in _WRAPPERS:
        settings_dict = copy.deepcopy(connections["default"].settings_dict)
        settings_dict["NAME"] = NAMES[size]
        _WRAPPERS[size] = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, DEFAULT_DB_ALIAS)
    connections[DEFAULT_DB_ALIAS] = _WRAPPERS[size]
    settings.DATABASES[DEFAULT_DB_ALIAS]["NAME"] = NAMES[size]


def _admin_cursor():
    import psycopg

    parts = urlsplit(BASE_URL)
    return psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def _version() -> str:
    """What the data depend on: the script that fills them, their sizes and the migrations on disk."""
    constants = (SIZES, SOLO_CHANNELS, AGENCY_CHANNELS, SOLO_POSTS, AGENCY_POSTS, EVENTS_PER_CHANNEL)
    more = (HEAVY_CHANNEL_EVENTS, KEEPALIVE_DUE, FINISHED_TASK_RESULTS)
    digest = hashlib.sha256(FILL_SQL.encode() + repr((constants, more)).encode())
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for key in sorted(loader.disk_migrations):
        digest.update(repr(key).encode())
        digest.update(Path(sys.modules[loader.disk_migrations[key].__module__].__file__).read_bytes())
    return digest.hexdigest()[:16]


def _stored_version(size: str) -> str | None:
    with _admin_cursor() as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [NAMES[size]]).fetchone():
            return None
    use(size)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_scale_build')")
        if cursor.fetchone()[0] is None:
            return None
        try:
            cursor.execute("SELECT version, built_at > now() - %s FROM bench_scale_build", [MAX_AGE])
        except DatabaseError:  # a marker from an earlier version of this script
            return None
        row = cursor.fetchone()
    return row[0] if row and row[1] else None  # data older than MAX_AGE are built again


def build(size: str, version: str) -> dict[str, Any]:
    """Create the database afresh and fill it; what the build measured (the index migration on this data)."""
    use(size)
    connection.close()
    with _admin_cursor() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{NAMES[size]}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{NAMES[size]}"')
    use(size)
    # The data go in before the indexes this work added; the migration that adds them then runs on the full data,
    # timed, the way it would run on a big deployment.
    before_indexes = _before_concurrent_indexes()
    call_command("migrate", verbosity=0)
    if before_indexes:
        call_command("migrate", "integrations", before_indexes, verbosity=0)
    started = time.monotonic()
    _fill(size)
    filled = time.monotonic() - started
    files_before = _relfilenodes()
    started = time.monotonic()
    call_command("migrate", verbosity=0)
    migrate_seconds = time.monotonic() - started
    rewritten = sorted(table for table, node in _relfilenodes().items() if files_before[table] != node)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            "CREATE TABLE bench_scale_build (version text, fill_seconds float, migrate_seconds float, rewritten text, "
            "built_at timestamptz DEFAULT now())"
        )
        cursor.execute(
            "INSERT INTO bench_scale_build VALUES (%s, %s, %s, %s)",
            [version, filled, migrate_seconds, ",".join(rewritten)],
        )
    return {"fill_seconds": filled, "migrate_seconds": migrate_seconds, "rewritten": rewritten}


def _before_concurrent_indexes() -> str | None:
    """The integrations migration just before the first one that builds indexes concurrently."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    names = sorted(name for app, name in loader.disk_migrations if app == "integrations")
    for previous, name in itertools.pairwise(names):
        migration = loader.disk_migrations["integrations", name]
        if any(isinstance(op, AddIndexConcurrently) for op in migration.operations):
            return previous
    return None


FRESHEN_SQL = """
-- The data were built with times relative to then: bring back what has aged into another state since, so that every
-- run measures the same situation (nothing due, the same 50 channels due for keep-alive, a week of task results).
UPDATE integrations_post SET next_attempt_at = now() + interval '10 minutes'
 WHERE status = 'waiting' AND next_attempt_at < now() + interval '5 minutes';
UPDATE TASK_TABLE AS task SET run_after = post.next_attempt_at FROM integrations_post AS post
 WHERE task.status = 'READY' AND task.task_path = %(retry_path)s
   AND (task.args_kwargs -> 'args' ->> 0)::bigint = post.id AND task.run_after <> post.next_attempt_at;
UPDATE integrations_post SET scheduled_at = scheduled_at + interval '30 days'
 WHERE status = 'scheduled' AND scheduled_at < now() + interval '1 hour';
UPDATE integrations_channel SET refreshed_at = now() - interval '1 day'
 WHERE status IN ('active', 'degraded', 'deactivated')
   AND COALESCE(refreshed_at, connected_at) <= now() - interval '6 days'
   AND id NOT BETWEEN %(measured_channels)s + 1 AND %(measured_channels)s + %(keepalive_due)s;
UPDATE integrations_channel SET refresh_expires_at = refresh_expires_at + interval '30 days'
 WHERE status IN ('active', 'degraded', 'deactivated') AND refresh_expires_at <= now() + interval '31 days';
UPDATE integrations_channel SET refreshed_at = now() - interval '8 days'
 WHERE id BETWEEN %(measured_channels)s + 1 AND %(measured_channels)s + %(keepalive_due)s;
UPDATE TASK_TABLE SET finished_at = finished_at + (now() - newest), started_at = started_at + (now() - newest),
       enqueued_at = enqueued_at + (now() - newest), run_after = run_after + (now() - newest)
  FROM (SELECT max(finished_at) AS newest FROM TASK_TABLE WHERE status = 'SUCCESSFUL') AS latest
 WHERE status = 'SUCCESSFUL';
"""
MAX_AGE = timedelta(days=7)  # after a week, events drift past their retention: the data are built again


def freshen() -> None:
    from django_tasks_db.models import DBTaskResult

    script = FRESHEN_SQL.replace("TASK_TABLE", connection.ops.quote_name(DBTaskResult._meta.db_table))
    params = {
        "retry_path": PUBLISH_POST_PATH,
        "measured_channels": SOLO_CHANNELS + AGENCY_CHANNELS,
        "keepalive_due": KEEPALIVE_DUE,
    }
    with connection.cursor() as cursor:
        for statement in script.split(";\n"):
            if statement.strip():
                cursor.execute(statement, params)


def _relfilenodes() -> dict[str, int]:
    tables = ["integrations_channel", "integrations_post", "integrations_postpart", "integrations_channelevent"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, relfilenode FROM pg_class WHERE relname = ANY(%s)", [tables])
        return dict(cursor.fetchall())


def _tokens() -> list[tuple[str, str]]:
    """A few (access, refresh) pairs of real ciphertext, made once with the configured key and reused by every row."""
    pairs = []
    for index in range(4):
        body = hashlib.sha256(f"bench-token-{index}".encode()).hexdigest() * 12
        pairs.append((crypto.encrypt(f"eyJhbGciOiJFUzI1NksifQ.{body}.access"), crypto.encrypt(f"eyJ.{body}.refresh")))
    return pairs


FILL_SQL = """
CREATE FUNCTION pg_temp.r(n bigint, salt int) RETURNS double precision LANGUAGE sql IMMUTABLE AS
  $$ SELECT (('x' || substr(md5(n::text || ':' || salt::text), 1, 8))::bit(32)::bigint & 2147483647)::float8
     / 2147483647 $$;
SET synchronous_commit = off;

-- Users: 1 the administrator, 2 solo, 3 the agency, then one user per 10 other channels.
INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
                       date_joined)
SELECT id, '!', id = 1, CASE id WHEN 1 THEN 'admin' WHEN 2 THEN 'solo' WHEN 3 THEN 'agency' ELSE 'user' || id END,
       '', '', CASE id WHEN 1 THEN 'admin@example.com' ELSE 'user' || id || '@example.com' END, id = 1, true,
       now() - interval '400 days'
FROM generate_series(1, 3 + (%(channels)s - %(measured_channels)s) / 10) AS id;

-- Channels: 1-10 solo's, 11-1010 the agency's, then ten per other user.
INSERT INTO integrations_channel (id, user_id, provider, did, handle, handle_verified, service_url, pds_endpoint,
    access_jwt, refresh_jwt, access_expires_at, refresh_expires_at, scope, session_generation, display_name,
    description, avatar_url, profile_status, profile_fetched_at, status, last_error_code, next_retry_at,
    owner_told_status, connected_at, refreshed_at, created_at, updated_at)
SELECT id,
       CASE WHEN id <= %(solo_channels)s THEN 2 WHEN id <= %(measured_channels)s THEN 3
            ELSE 4 + (id - %(measured_channels)s - 1) / 10 END,
       'bluesky', 'did:plc:' || substr(md5('did' || id), 1, 24),
       CASE WHEN id <= %(solo_channels)s THEN 'solo-' || id
            WHEN id <= %(measured_channels)s THEN 'agency-' || (id - %(solo_channels)s)
            ELSE 'u' || id END || '.bench.test',
       true, 'https://bsky.social', 'https://pds' || (id %% 50) || '.example.com',
       CASE WHEN status = 'disconnected' THEN '' ELSE (ARRAY[%(a0)s, %(a1)s, %(a2)s, %(a3)s])[1 + id %% 4] END,
       CASE WHEN status = 'disconnected' THEN '' ELSE (ARRAY[%(r0)s, %(r1)s, %(r2)s, %(r3)s])[1 + id %% 4] END,
       now() + interval '1 hour', now() + interval '60 days' + pg_temp.r(id, 1) * interval '29 days',
       'com.atproto.appPass', 1, 'Channel ' || id, 'A channel of the scale benchmark.', '', 'ok',
       now() - interval '1 day', status, '', NULL, CASE WHEN status = 'active' THEN '' ELSE status END,
       now() - interval '100 days' - pg_temp.r(id, 2) * interval '300 days',
       CASE WHEN id BETWEEN %(measured_channels)s + 1 AND %(measured_channels)s + %(keepalive_due)s
            THEN now() - interval '8 days' ELSE now() - pg_temp.r(id, 3) * interval '6 days' END,
       now() - interval '400 days', now()
FROM (SELECT id, CASE WHEN id <= %(measured_channels)s + %(keepalive_due)s THEN 'active'
                      WHEN pg_temp.r(id, 4) < 0.01 THEN 'degraded'
                      WHEN pg_temp.r(id, 4) < 0.02 THEN 'needs_reconnection'
                      WHEN pg_temp.r(id, 4) < 0.03 THEN 'disconnected'
                      ELSE 'active' END AS status
      FROM generate_series(1, %(channels)s) AS id) AS c;

-- Posts: solo's 100 and the agency's 10,000 first, then the others', ~10 per channel; one in 50 scheduled (ahead), a
-- few failed, cancelled or waiting for a retry (later), the rest published. Nothing is due.
INSERT INTO integrations_post (id, user_id, channel_id, status, reply_to_uri, quote_uri, created_at, published_at,
    scheduled_at, cancelled_at, attempts, next_attempt_at, lease_until, error_code, error_message)
SELECT p.id, channel.user_id, channel.id, p.status, '', '', p.created_at,
       CASE WHEN p.status = 'published' THEN p.created_at + interval '1 second' END,
       CASE WHEN p.status = 'scheduled' THEN now() + interval '1 hour' + pg_temp.r(p.id, 6) * interval '30 days'
            WHEN p.status = 'cancelled' THEN p.created_at + interval '2 days'
            WHEN p.id %% 5 = 0 THEN p.created_at END,  -- a fifth of the others were scheduled once
       CASE WHEN p.status = 'cancelled' THEN p.created_at + interval '1 hour' END,
       CASE WHEN p.status IN ('scheduled', 'cancelled') THEN 0 ELSE 1 END,
       CASE WHEN p.status = 'waiting' THEN now() + interval '10 minutes' + pg_temp.r(p.id, 7) * interval '1 hour' END,
       NULL,
       CASE p.status WHEN 'failed' THEN 'post_rejected' WHEN 'waiting' THEN 'pds_unreachable' ELSE '' END,
       CASE p.status WHEN 'failed' THEN 'The PDS refused the post.' WHEN 'waiting' THEN 'Bluesky did not answer.'
                     ELSE '' END
FROM (SELECT id,
             CASE WHEN id <= %(solo_posts)s THEN 1 + (id - 1) %% %(solo_channels)s
                  WHEN id <= %(solo_posts)s + %(agency_posts)s
                      THEN %(solo_channels)s + 1 + (id - %(solo_posts)s - 1) %% %(agency_channels)s
                  ELSE %(measured_channels)s + 1
                       + (id - %(solo_posts)s - %(agency_posts)s - 1) %% (%(channels)s - %(measured_channels)s)
             END AS channel_id,
             CASE WHEN id %% 50 = 0 THEN 'scheduled' WHEN id %% 200 = 7 THEN 'failed'
                  WHEN id %% 250 = 11 THEN 'cancelled'
                  WHEN id %% 300 = 13 AND id <= %(recent_failures_below)s THEN 'waiting'  -- within the last hour
                  ELSE 'published' END AS status,
             now() - pg_temp.r(id, 8) * interval '365 days' AS created_at
      FROM generate_series(1, %(posts)s) AS id) AS p
JOIN integrations_channel AS channel ON channel.id = p.channel_id;

-- Parts: 1.27 per post on average (a quarter are threads); a tenth with an image, a tenth with a link card.
INSERT INTO integrations_postpart (post_id, index, text, langs, images, card, card_note, rkey, record, expected_cid,
    uri, cid)
SELECT post.id, part.index, part.text, '["en"]',
       CASE WHEN pg_temp.r(post.id * 32 + part.index, 11) < 0.1
            THEN jsonb_build_array(jsonb_build_object('media', post.id, 'alt', 'A picture.')) ELSE '[]' END,
       CASE WHEN pg_temp.r(post.id * 32 + part.index, 12) < 0.1
            THEN jsonb_build_object('uri', 'https://example.com/' || post.id, 'title', 'A page',
                                    'description', 'What the page says.', 'media', NULL) END,
       '', part.rkey,
       jsonb_build_object('$type', 'app.bsky.feed.post', 'text', part.text, 'langs', jsonb_build_array('en'),
                          'createdAt', to_char(post.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
       part.cid,
       CASE WHEN post.status = 'published' THEN 'at://' || channel.did || '/app.bsky.feed.post/' || part.rkey
            ELSE '' END,
       CASE WHEN post.status = 'published' THEN part.cid ELSE '' END
FROM integrations_post AS post
JOIN integrations_channel AS channel ON channel.id = post.channel_id
CROSS JOIN LATERAL (
  SELECT index, 'Post ' || post.id || ', part ' || (index + 1) || ': ' || repeat(md5(post.id::text || index), 3)
                || ' https://example.com/' || post.id AS text,
         '3l' || lpad(to_hex(post.id * 32 + index), 11, '2') AS rkey,
         'bafyrei' || substr(md5('cid' || post.id || ':' || index) || md5(post.id::text), 1, 52) AS cid
  FROM generate_series(0, (pg_temp.r(post.id, 9) < 0.25)::int + (pg_temp.r(post.id, 10) < 0.02)::int) AS index
) AS part;

-- Uploads still waiting for their scheduled post (the published ones' were removed with publishing).
INSERT INTO integrations_media (id, owner_id, file, mime, width, height, size, created_at)
SELECT DISTINCT post.id, post.user_id, 'integrations/media/bench/' || post.id, 'image/jpeg', 1200, 800, 180000,
       post.created_at
FROM integrations_post AS post JOIN integrations_postpart AS part ON part.post_id = post.id
WHERE post.status = 'scheduled' AND part.images <> '[]';

-- Events: 30 per channel over the last 60 days; 5,000 for solo's first channel; 100 older than the retention.
INSERT INTO integrations_channelevent (channel_id, kind, detail, error_code, created_at)
SELECT channel.id, (ARRAY['refreshed', 'refreshed', 'refreshed', 'profile_updated', 'refresh_failed'])[1 + n %% 5],
       CASE WHEN n %% 5 = 4 THEN 'The PDS did not answer in time.' ELSE '' END,
       CASE WHEN n %% 5 = 4 THEN 'pds_timeout' ELSE '' END,
       now() - pg_temp.r(channel.id * 64 + n, 13) * interval '60 days'
FROM generate_series(1, %(channels)s) AS channel(id) CROSS JOIN generate_series(1, %(events_per_channel)s) AS n;
INSERT INTO integrations_channelevent (channel_id, kind, detail, error_code, created_at)
SELECT 1, 'refreshed', '', '', now() - n * interval '10 minutes' FROM generate_series(1, %(heavy_events)s) AS n;
INSERT INTO integrations_channelevent (channel_id, kind, detail, error_code, created_at)
SELECT 1 + n * 7 %% %(channels)s, 'refreshed', '', '', now() - interval '200 days' FROM generate_series(1, 100) AS n;

-- The task table: a retry waiting for each post that waits, a week of finished publish_due_posts runs (what the
-- retention keeps), the next keep-alive sweep.
INSERT INTO TASK_TABLE (id, status, enqueued_at, started_at, finished_at, args_kwargs, priority,
    task_path, worker_ids, queue_name, backend_name, run_after, return_value, exception_class_path, traceback)
SELECT md5('retry' || id)::uuid, 'READY', now(), NULL, NULL,
       jsonb_build_object('args', jsonb_build_array(id), 'kwargs', '{}'::jsonb), 0, %(retry_path)s, '[]',
       'default', 'default', next_attempt_at, NULL, '', ''
FROM integrations_post WHERE status = 'waiting';
INSERT INTO TASK_TABLE (id, status, enqueued_at, started_at, finished_at, args_kwargs, priority,
    task_path, worker_ids, queue_name, backend_name, run_after, return_value, exception_class_path, traceback)
SELECT md5('run' || n)::uuid, 'SUCCESSFUL', now() - n * interval '30 seconds', now() - n * interval '30 seconds',
       now() - n * interval '30 seconds' + interval '50 ms', '{"args": [], "kwargs": {}}', 0, %(due_path)s,
       '["worker-1"]', 'default', 'default', now() - n * interval '30 seconds', '{}', '', ''
FROM generate_series(1, %(finished_results)s) AS n;
INSERT INTO TASK_TABLE (id, status, enqueued_at, args_kwargs, priority, task_path, worker_ids,
    queue_name, backend_name, run_after, exception_class_path, traceback)
VALUES (md5('keepalive')::uuid, 'READY', now(), '{"args": [], "kwargs": {}}', 0, 'integrations.tasks.keepalive_sweep',
        '[]', 'default', 'default', now() + interval '6 hours', '', '');

SELECT setval(pg_get_serial_sequence('auth_user', 'id'), (SELECT max(id) FROM auth_user));
SELECT setval(pg_get_serial_sequence('integrations_channel', 'id'), (SELECT max(id) FROM integrations_channel));
SELECT setval(pg_get_serial_sequence('integrations_post', 'id'), (SELECT max(id) FROM integrations_post));
SELECT setval(pg_get_serial_sequence('integrations_media', 'id'), (SELECT max(id) FROM integrations_media));
"""


def _fill(size: str) -> None:
    counts = SIZES[size]
    tokens = _tokens()
    params = {
        **counts,
        "measured_channels": SOLO_CHANNELS + AGENCY_CHANNELS,
        "solo_channels": SOLO_CHANNELS,
        "agency_channels": AGENCY_CHANNELS,
        "solo_posts": SOLO_POSTS,
        "agency_posts": AGENCY_POSTS,
        "keepalive_due": KEEPALIVE_DUE,
        "events_per_channel": EVENTS_PER_CHANNEL,
        "heavy_events": HEAVY_CHANNEL_EVENTS,
        "finished_results": FINISHED_TASK_RESULTS,
        "retry_path": PUBLISH_POST_PATH,
        "recent_failures_below": SIZES["small"]["posts"],
        "due_path": PUBLISH_DUE_PATH,
        **{f"a{i}": access for i, (access, _) in enumerate(tokens)},
        **{f"r{i}": refresh for i, (_, refresh) in enumerate(tokens)},
    }
    from django_tasks_db.models import DBTaskResult

    script = FILL_SQL.replace("TASK_TABLE", connection.ops.quote_name(DBTaskResult._meta.db_table))
    with connection.cursor() as cursor:
        for statement in script.split(";\n"):
            if not statement.strip():
                continue
            comment = next((line for line in statement.strip().splitlines() if line.startswith("-- ")), "")
            if comment:
                print(f"    {comment[3:]}", flush=True)
            cursor.execute(statement, params)
    from rest_framework.authtoken.models import Token

    for username in ("solo", "agency"):
        Token.objects.create(user=get_user_model().objects.get(username=username), key=f"bench-{username}-token-0001")


# --- measuring ---------------------------------------------------------------------------------------------------
@dataclass
class Result:
    seconds: float
    queries: int
    peak_mib: float | None = None
    sql: list[str] = field(default_factory=list)


@dataclass
class Operation:
    name: str
    group: str  # "page", "api", "admin", "background"
    run: Callable[[dict[str, Any]], Any]
    linear: str = ""  # why it grows with the data, when it does by design
    rollback: bool = False  # run inside a transaction that is rolled back (it changes data)
    within: float | None = None  # seconds it must take at most on the big data, whatever the ratio
    results: dict[str, Result] = field(default_factory=dict)
    ratio: float = 0.0


class _Rollback(Exception):
    pass


def _once(operation: Operation, context: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    if not operation.rollback:
        answer = operation.run(context)
        return time.perf_counter() - started, answer
    try:
        with transaction.atomic():
            answer = operation.run(context)
            elapsed = time.perf_counter() - started
            raise _Rollback
    except _Rollback:
        pass
    return elapsed, answer


SLOW = 5.0  # seconds: an operation this slow is timed once (its warm-up run)


def measure(operation: Operation, contexts: dict[str, dict[str, Any]], runs: int) -> None:
    """Time the operation on both sizes, the runs interleaved in pairs (small, big, small, big, …) so that whatever
    else the machine does weighs on both alike, after a warm-up run each (caches, plans); the ratio is the median of
    the pairs' ratios. Then count its queries and, for background work, its peak Python memory."""
    warm = {}
    for size in SIZES:
        use(size)
        warm[size], answer = _once(operation, contexts[size])
        _check(operation, answer)
    times: dict[str, list[float]] = {size: [] for size in SIZES}
    if max(warm.values()) > SLOW:
        times = {size: [warm[size]] for size in SIZES}
    for _ in range(0 if times["small"] else runs if max(warm.values()) < 0.3 else 3):
        for size in SIZES:
            use(size)
            times[size].append(_once(operation, contexts[size])[0])
    operation.ratio = statistics.median(big / small for small, big in zip(times["small"], times["big"], strict=True))
    for size in SIZES:
        use(size)
        with CaptureQueriesContext(connection) as queries:
            _once(operation, contexts[size])
        sql = [q["sql"] for q in queries.captured_queries]
        result = Result(statistics.median(times[size]), len(queries), sql=sql)
        if operation.group == "background":
            tracemalloc.start()
            _once(operation, contexts[size])
            result.peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        operation.results[size] = result


def _check(operation: Operation, answer: Any) -> None:
    status = getattr(answer, "status_code", None)
    if status is not None and status >= 400:
        raise SystemExit(f"{operation.name}: answered {status}")


class InstantPds:
    """The PDS, answering at once: the channel's own records for the feed, success for every write."""

    records: dict[str, list[dict[str, Any]]] = {}

    def list_records(self, token: str, did: str, collection: str, limit: int, cursor: str | None = None):
        return self.records.get(did, [])[:limit], None

    def apply_writes(self, token: str, did: str, writes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{} for _ in writes]  # the planned CIDs stand

    def upload_blob(self, token: str, data: bytes, mime: str) -> str:
        return "bafkreibench"

    def record_cid(self, token: str, did: str, collection: str, rkey: str) -> str | None:
        return None

    def delete_record(self, token: str, did: str, collection: str, rkey: str) -> None:
        return None


def instant_call(channel: Channel, fn: Callable[[Any, str], Any]) -> Any:
    return fn(InstantPds(), "access-token")


def prepare_context() -> dict[str, Any]:
    """Ids, clients and cursors for the measured users on the current database."""
    users = get_user_model().objects
    solo, agency, admin = users.get(username="solo"), users.get(username="agency"), users.get(username="admin")
    context: dict[str, Any] = {"solo": solo, "agency": agency}
    for name, user in (("solo", solo), ("agency", agency), ("admin", admin)):
        client = Client()
        client.force_login(user)
        context[f"{name}_web"] = client
    for name in ("solo", "agency"):
        context[f"{name}_api"] = Client(HTTP_AUTHORIZATION=f"Token bench-{name}-token-0001")
        own = Post.objects.filter(user=context[name])
        context[f"{name}_channel"] = Channel.objects.filter(user=context[name]).order_by("pk").first()
        context[f"{name}_scheduled"] = own.filter(status="scheduled").order_by("scheduled_at", "pk").first()
        # The equivalent of /app/posts?page=400 (20 a page) and of the API's 320th page (25 a page): as deep as the
        # user's history goes, 8,000 posts for the agency. The page orders the history by when each post went out,
        # was cancelled or was due (`post_history_at`); the API lists every post by when it was written.
        history = own.exclude(status="scheduled").annotate(at=post_history_at()).order_by("-at", "-pk")
        deep = history[min(7_999, history.count() - 2)]
        context[f"{name}_history_cursor"] = pagination._encode([deep.at.isoformat(), deep.pk])
        written = own.order_by("-created_at", "-pk")
        deep = written[min(7_999, written.count() - 2)]
        context[f"{name}_deep_cursor"] = pagination._encode([deep.created_at.isoformat(), deep.pk])
        channels = Channel.objects.filter(user=context[name]).exclude(status="disconnected").order_by("handle", "pk")
        last = channels[min(49, channels.count() - 2)]
        context[f"{name}_channels_cursor"] = pagination._encode([last.handle, last.pk])
        channel = context[f"{name}_channel"]
        uris = list(
            PostPart.objects.filter(post__channel=channel, post__status="published")
            .exclude(uri="")
            .order_by("-post__created_at")
            .values_list("uri", flat=True)[:20]
        )
        foreign = [f"at://{channel.did}/app.bsky.feed.post/3lelsewhere{n:03d}" for n in range(5)]
        InstantPds.records[channel.did] = [
            {"uri": uri, "cid": "bafyreibench", "value": {"text": "A post.", "createdAt": "2026-11-01T10:00:00Z"}}
            for uri in uris + foreign
        ]
        context[f"{name}_feed_uris"] = uris + foreign
    context["heavy_channel"] = Channel.objects.get(pk=1)
    context["any_post"] = Post.objects.filter(user=agency, status="published").order_by("-pk").first()
    due = (
        Post.objects.filter(status="scheduled", channel__status="active")
        .exclude(parts__images__0__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)[:28]
    )
    context["due_ids"] = list(due)
    return context


def make_due(context: dict[str, Any]) -> None:
    Post.objects.filter(pk__in=context["due_ids"]).update(scheduled_at=timezone.now() - timedelta(minutes=1))


def stale_uploads(context: dict[str, Any], count: int = 20) -> None:
    from integrations.models import Media

    old = timezone.now() - timedelta(days=2)
    Media.objects.bulk_create(
        Media(
            owner=context["solo"],
            file=f"integrations/media/bench/stale-{n}",
            mime="image/png",
            width=10,
            height=10,
            size=100,
            created_at=old,
        )
        for n in range(count)
    )


def _claim_due(context: dict[str, Any]) -> Any:
    return claim_due()


def _claim_28(context: dict[str, Any]) -> Any:
    make_due(context)
    return claim_due()


def _publish_28(context: dict[str, Any]) -> Any:
    make_due(context)
    return publish_due()


def _purge(context: dict[str, Any]) -> Any:
    stale_uploads(context)
    return purge_unused_media()


def _db_worker_claim(context: dict[str, Any]) -> Any:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.ready().filter(backend_name="default", queue_name__in=["default"]).get_locked()


def _chain_next(context: dict[str, Any]) -> Any:
    return schedule_publishing()


def operations() -> list[Operation]:
    ops: list[Operation] = []
    for who, channels in (("solo", "10 ch., 100 posts"), ("agency", "1,000 ch., 10,000 posts")):
        web, api = f"{who}_web", f"{who}_api"

        def get(client: str, url: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], Any]:
            return lambda c: c[client].get(url(c))

        ops += [
            Operation(f"{who} ({channels}): /app/channels", "page", get(web, lambda c: "/app/channels")),
            Operation(
                f"{who}: /app/channels, second page",
                "page",
                get(web, lambda c, w=who: f"/app/channels?cursor={c[f'{w}_channels_cursor']}"),
            ),
            Operation(
                f"{who}: channel page (feed of 25, events)",
                "page",
                get(web, lambda c, w=who: f"/app/channels/{c[f'{w}_channel'].pk}"),
            ),
            Operation(f"{who}: /app/posts", "page", get(web, lambda c: "/app/posts")),
            Operation(
                f"{who}: /app/posts, 8,000 posts deep (was ?page=400)",
                "page",
                get(web, lambda c, w=who: f"/app/posts?cursor={c[f'{w}_history_cursor']}"),
            ),
            Operation(f"{who}: composer /app/posts/new", "page", get(web, lambda c: "/app/posts/new")),
            Operation(
                f"{who}: composer channel search", "page", get(web, lambda c: "/app/posts/new/channels?q=agency-12")
            ),
            Operation(
                f"{who}: edit a scheduled post",
                "page",
                get(web, lambda c, w=who: f"/app/posts/{c[f'{w}_scheduled'].pk}/edit"),
            ),
            Operation(
                f"{who}: cancel a scheduled post (POST)",
                "page",
                lambda c, w=who: c[f"{w}_web"].post(f"/app/posts/{c[f'{w}_scheduled'].pk}/delete"),
                rollback=True,
            ),
            Operation(f"{who}: GET /api/v1/channels/", "api", get(api, lambda c: "/api/v1/channels/")),
            Operation(
                f"{who}: GET /api/v1/channels/{{id}}/",
                "api",
                get(api, lambda c, w=who: f"/api/v1/channels/{c[f'{w}_channel'].pk}/"),
            ),
            Operation(
                f"{who}: GET /api/v1/channels/{{id}}/events/",
                "api",
                get(api, lambda c, w=who: f"/api/v1/channels/{c[f'{w}_channel'].pk}/events/"),
            ),
            Operation(
                f"{who}: GET /api/v1/channels/{{id}}/posts/ (feed)",
                "api",
                get(api, lambda c, w=who: f"/api/v1/channels/{c[f'{w}_channel'].pk}/posts/"),
            ),
            Operation(f"{who}: GET /api/v1/posts/", "api", get(api, lambda c: "/api/v1/posts/")),
            Operation(
                f"{who}: GET /api/v1/posts/, 8,000 posts deep",
                "api",
                get(api, lambda c, w=who: f"/api/v1/posts/?cursor={c[f'{w}_deep_cursor']}"),
            ),
            Operation(
                f"{who}: GET /api/v1/posts/{{id}}/",
                "api",
                get(api, lambda c, w=who: f"/api/v1/posts/{c[f'{w}_scheduled'].pk}/"),
            ),
        ]
    admin = "admin_web"
    ops += [
        Operation("admin: channels changelist", "admin", lambda c: c[admin].get("/admin/integrations/channel/")),
        Operation(
            "admin: channel search by handle",
            "admin",
            lambda c: c[admin].get("/admin/integrations/channel/?q=agency-12"),
        ),
        Operation(
            "admin: channel search by username", "admin", lambda c: c[admin].get("/admin/integrations/channel/?q=solo")
        ),
        Operation(
            "admin: channel page, 5,000 events",
            "admin",
            lambda c: c[admin].get(f"/admin/integrations/channel/{c['heavy_channel'].pk}/change/"),
        ),
        Operation("admin: posts changelist", "admin", lambda c: c[admin].get("/admin/integrations/post/")),
        Operation(
            "admin: posts filtered by status (failed)",
            "admin",
            lambda c: c[admin].get("/admin/integrations/post/?status__exact=failed"),
        ),
        Operation(
            "admin: post search by handle", "admin", lambda c: c[admin].get("/admin/integrations/post/?q=agency-12")
        ),
        Operation(
            "admin: post search by at:// URI",
            "admin",
            lambda c: c[admin].get(f"/admin/integrations/post/?q={c['agency_feed_uris'][0]}"),
        ),
        Operation(
            "admin: post page", "admin", lambda c: c[admin].get(f"/admin/integrations/post/{c['any_post'].pk}/change/")
        ),
        Operation("admin: Bluesky settings page", "admin", lambda c: c[admin].get("/admin/api-integration/bluesky")),
        Operation("claim due posts, nothing due", "background", _claim_due, rollback=True),
        Operation("claim due posts, 28 due", "background", _claim_28, rollback=True),
        Operation("publish_due() with 28 due (PDS instant)", "background", _publish_28, rollback=True),
        Operation(
            "feed lookup: which of 25 records Skyport published",
            "background",
            lambda c: feed.published_here(c["agency_feed_uris"]),
        ),
        Operation(
            "keep-alive: channels due (50 due)",
            "background",
            lambda c: list(keepalive.channels_due().order_by("refresh_expires_at", "pk").values_list("pk", flat=True)),
        ),
        Operation(
            "keep-alive: media clean-up (purge_unused_media, 20 stale)", "background", _purge, rollback=True, within=1.0
        ),
        Operation(
            "keep-alive: prune events (100 past retention)",
            "background",
            lambda c: retention.prune_events(),
            rollback=True,
        ),
        Operation(
            "keep-alive: prune finished task results",
            "background",
            lambda c: retention.prune_task_results(),
            rollback=True,
        ),
        Operation(
            "task chain: next run of publish_due_posts (at the next due time)", "background", _chain_next, rollback=True
        ),
        Operation("db_worker: take the next task", "background", _db_worker_claim, rollback=True),
        Operation(
            "stored-secrets check at migrate (rotation.scan)",
            "background",
            lambda c: rotation.scan(),
            linear="linear by design: it reads every stored secret's HMAC, once per deploy",
        ),
    ]
    return ops


# --- the table ---------------------------------------------------------------------------------------------------
SCANNED = ("integrations_post", "integrations_postpart")


def plans(operation: Operation) -> tuple[list[str], set[str]]:
    """EXPLAIN of each query the operation made on the big data, and which of posts/parts any of them scans."""
    shown, scanned, seen = [], set(), set()
    with connection.cursor() as cursor:
        for sql in operation.results["big"].sql:
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
                continue
            shape = re.sub(r"'[^']*'|\b\d+\b", "?", sql)  # the same statement for another row: shown once
            if shape in seen:
                continue
            seen.add(shape)
            cursor.execute(f"EXPLAIN {sql}")
            lines = [row[0] for row in cursor.fetchall()]
            shown.append(sql[:300] + ("…" if len(sql) > 300 else ""))
            shown += ["    " + line for line in lines]
            for line in lines:
                for table in SCANNED:
                    if f"Seq Scan on {table} " in line + " ":
                        scanned.add(table)
    return shown, scanned


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="build both databases again")
    parser.add_argument("--build-only", choices=["small", "big"], help="build (or check) one database and stop")
    parser.add_argument("--only", default="", help="measure only operations whose name contains this")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per operation and size (median)")
    parser.add_argument("--plans", default=str(Path(tempfile.gettempdir()) / "skyport-bench-scale-plans.txt"))
    args = parser.parse_args()
    setup_test_environment()
    settings.INTEGRATIONS_LINK_CARDS = False
    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="skyport-bench-scale-media-")
    door.call = instant_call  # the PDS answers at once: Skyport's own work is measured

    version = _version()
    builds: dict[str, Any] = {}
    if args.build_only:
        SIZES.pop("big") if args.build_only == "small" else SIZES.pop("small")
    for size in SIZES:
        if args.rebuild or _stored_version(size) != version:
            print(f"building the {size} database ({SIZES[size]['posts']:,} posts)…", flush=True)
            builds[size] = build(size, version)
            print(f"  filled in {builds[size]['fill_seconds']:.0f} s", flush=True)
        use(size)
        freshen()
        with connection.cursor() as cursor:
            cursor.execute("SELECT fill_seconds, migrate_seconds, rewritten FROM bench_scale_build")
            fill, migrate_seconds, rewritten = cursor.fetchone()
        builds[size] = {"fill_seconds": fill, "migrate_seconds": migrate_seconds, "rewritten": rewritten}

    if args.build_only:
        return
    contexts = {}
    for size in SIZES:
        use(size)
        contexts[size] = prepare_context()
    for size in SIZES:  # the first request of a process loads templates, URL patterns and translations
        use(size)
        contexts[size]["solo_web"].get("/app/channels")
        contexts[size]["admin_web"].get("/admin/")
    selected = [op for op in operations() if args.only.lower() in op.name.lower()]
    print(f"measuring {len(selected)} operations on both sizes ({args.runs} runs each, median)…", flush=True)
    for operation in selected:
        measure(operation, contexts, args.runs)
        small, big = operation.results["small"], operation.results["big"]
        print(f"  {operation.name}: {_ms(small.seconds)} / {_ms(big.seconds)}", flush=True)

    use("big")
    rows, plan_lines, missed = [], [], []
    for operation in selected:
        small, big = operation.results["small"], operation.results["big"]
        ratio = operation.ratio
        note = ""
        if operation.group == "background":
            shown, scanned = plans(operation)
            plan_lines += [f"## {operation.name}", *shown, ""]
            note = "scans " + ", ".join(sorted(scanned)) if scanned else "no scan of posts/parts"
            if scanned:
                missed.append(operation.name)
            note += f"; peak {big.peak_mib:.1f} MiB"
        verdict = "linear by design" if operation.linear else ("ok" if ratio <= TARGET else "MISSED")
        if operation.within is not None and big.seconds > operation.within:
            verdict = f"MISSED (over {operation.within:g} s)"
        if big.peak_mib is not None and big.peak_mib > PEAK_MIB:
            verdict = f"MISSED (over {PEAK_MIB} MiB)"
        if verdict.startswith("MISSED"):
            missed.append(operation.name)
        rows.append(
            (
                operation.name,
                f"{_ms(small.seconds)} / {_ms(big.seconds)}",
                f"{ratio:.2f}",
                f"{small.queries} / {big.queries}",
                verdict + (f"; {note}" if note else ""),
            )
        )
    big_build = builds["big"]
    rows.append(
        (
            "migration adding the indexes on the big data (CONCURRENTLY)",
            f"{builds['small']['migrate_seconds']:.1f} s / {big_build['migrate_seconds']:.1f} s",
            "",
            "",
            "linear by design (one pass per index); tables rewritten: " + (big_build["rewritten"] or "none"),
        )
    )
    header = ("operation", "time, small / big (median)", "big ÷ small", "queries", "verdict")
    width = [max(len(str(r[i])) for r in [*rows, header]) for i in range(5)]
    print()
    print("| " + " | ".join(h.ljust(width[i]) for i, h in enumerate(header)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in width) + "|")
    for r in rows:
        print("| " + " | ".join(str(v).ljust(width[i]) for i, v in enumerate(r)) + " |")
    Path(args.plans).write_text("\n".join(plan_lines))
    print(f"\nQuery plans of the background queries on the big data: {args.plans}")
    print("\n".join(plan_lines))
    for wrapper in _WRAPPERS.values():
        wrapper.close()
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
