"""Costs that stay flat as the data grow (issue 24): the worker's queries read indexes, not whole tables; the migration
that adds those indexes is safe on a big table; the admin and the composer stay usable with many rows.

The plan tests need PostgreSQL (`TEST_DATABASE_URL`): they ask its planner, on a few thousand rows with fresh
statistics, how it would run the real query. `make bench-scale` shows the same plans on a million posts."""

from datetime import timedelta

import pytest
from django.db import connection, migrations
from django.db.migrations.loader import MigrationLoader
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.bluesky.accounts import feed, keepalive
from integrations.migration_operations import AddIndexConcurrently
from integrations.models import Channel, Post, PostPart
from integrations.posting.due import claim_due
from tests.test_pagination import make_channels, make_posts

pytestmark = pytest.mark.django_db


def needs_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("a plan test: run with TEST_DATABASE_URL=postgres://…")


def plan_of(sql: str, params: tuple = ()) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def the_query(queries, starts: str) -> str:
    [sql] = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(starts)]
    return sql


@pytest.fixture
def history(user):
    """A user's 3,000 published posts (with a part each), 60 scheduled for later and 20 waiting to retry later:
    nothing is due."""
    channel = make_channels(user, 1)[0]
    make_posts(user, channel, 3000)
    later = timezone.now() + timedelta(days=2)
    make_posts(user, channel, 60, status=Post.Status.SCHEDULED, scheduled_at=later)
    waiting = make_posts(user, channel, 20, status=Post.Status.WAITING)
    Post.objects.filter(pk__in=[p.pk for p in waiting]).update(next_attempt_at=later)
    return channel


def due_now(channel, count: int, *, minutes_ago: int = 1) -> list[Post]:
    posts = make_posts(channel.user, channel, count, status=Post.Status.SCHEDULED)
    when = timezone.now() - timedelta(minutes=minutes_ago)
    Post.objects.filter(pk__in=[p.pk for p in posts]).update(scheduled_at=when)
    return posts


# --- claiming due posts --------------------------------------------------------------------------------------------
def test_claiming_costs_one_query_whatever_else_is_stored_and_one_write_per_post_taken(user):
    channel = make_channels(user, 1)[0]
    with CaptureQueriesContext(connection) as empty:
        assert claim_due() == []
    make_posts(user, channel, 500)
    make_posts(user, channel, 50, status=Post.Status.SCHEDULED, scheduled_at=timezone.now() + timedelta(days=1))
    with CaptureQueriesContext(connection) as full:
        assert claim_due() == []
    assert len(full) == len(empty)
    assert len([q for q in full.captured_queries if "integrations_post" in q["sql"]]) == 1

    newer = due_now(channel, 2, minutes_ago=1)
    older = due_now(channel, 1, minutes_ago=5)  # written after, due before
    with CaptureQueriesContext(connection) as taking:
        claimed = claim_due()
    assert [post.pk for post in claimed] == [older[0].pk, *[p.pk for p in newer]]  # the longest due first
    assert {post.status for post in claimed} == {Post.Status.PUBLISHING}
    writes = [q for q in taking.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 3 and len(taking) == len(empty) + 3


@pytest.mark.postgres
def test_claiming_reads_the_index_of_unfinished_posts_not_the_posts_table(history):
    needs_postgres()
    due_now(history, 3)
    analyze()
    with CaptureQueriesContext(connection) as queries:
        assert len(claim_due()) == 3
    plan = plan_of(the_query(queries, "SELECT"))
    assert "integrations_post_due" in plan, plan
    assert "Seq Scan on integrations_post " not in plan + " ", plan


@pytest.mark.postgres
def test_with_nothing_due_the_claim_finds_nothing_in_the_index(history):
    needs_postgres()
    analyze()
    with CaptureQueriesContext(connection) as queries:
        assert claim_due() == []
    plan = plan_of(the_query(queries, "SELECT"))
    assert "Index Scan using integrations_post_due" in plan, plan


# --- the feed's published-here lookup ------------------------------------------------------------------------------
def published_uris(channel, count: int) -> list[str]:
    parts = list(PostPart.objects.filter(post__channel=channel).order_by("pk")[:count])
    for part in parts:
        part.uri = f"at://{channel.did}/app.bsky.feed.post/{part.rkey}"
    PostPart.objects.bulk_update(parts, ["uri"])
    return [part.uri for part in parts]


def test_the_feed_lookup_is_one_query_for_a_page_and_none_for_an_empty_one(history):
    uris = published_uris(history, 20)
    page = [*uris, "at://did:plc:someoneelse/app.bsky.feed.post/3kxyz"]
    with CaptureQueriesContext(connection) as queries:
        assert feed.published_here(page) == set(uris)
    assert len(queries) == 1
    with CaptureQueriesContext(connection) as none:
        assert feed.published_here([]) == set()
    assert len(none) == 0


@pytest.mark.postgres
def test_the_feed_lookup_reads_the_index_on_the_parts_uri(history):
    needs_postgres()
    uris = published_uris(history, 25)
    analyze()
    with CaptureQueriesContext(connection) as queries:
        feed.published_here(uris)
    plan = plan_of(the_query(queries, "SELECT"))
    assert "integrations_postpart_uri" in plan, plan
    assert "Seq Scan" not in plan, plan


# --- the history on /app/posts ------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_a_history_page_reads_the_index_of_the_historys_order_however_deep(history, alice_client, other_user):
    """/app/posts orders the history by when each post went out, was cancelled, was due or was written (an
    expression): its page, the first or one 2,000 posts deep, is read from the index of that order, never by sorting
    the user's posts."""
    needs_postgres()
    make_posts(other_user, make_channels(other_user, 1, start=500)[0], 2000)
    cancelled = make_posts(history.user, history, 30, status=Post.Status.CANCELLED)
    Post.objects.filter(pk__in=[p.pk for p in cancelled]).update(cancelled_at=timezone.now())
    analyze()
    deep = Post.objects.filter(user=history.user).exclude(status="scheduled").order_by("-created_at", "-pk")[2000]
    from integrations import pagination

    cursor = pagination._encode([deep.created_at.isoformat(), deep.pk])  # no scheduled_at, published_at: the same
    for query in ({}, {"cursor": cursor}):
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get("/app/posts", query).status_code == 200
        [sql] = [q["sql"] for q in queries.captured_queries if "COALESCE" in q["sql"] and "LIMIT" in q["sql"]]
        plan = plan_of(sql)
        assert "integrations_post_user_history" in plan, plan
        assert "Sort" not in plan and "Seq Scan" not in plan, plan


# --- keep-alive ----------------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_keepalive_finds_due_channels_through_its_indexes(user):
    needs_postgres()
    now = timezone.now()
    make_channels(
        user,
        2000,
        refresh_jwt="x",
        refreshed_at=now - timedelta(days=1),
        connected_at=now,
        refresh_expires_at=now + timedelta(days=80),
    )
    stale = Channel.objects.order_by("pk")[:3]
    Channel.objects.filter(pk__in=[c.pk for c in stale]).update(refreshed_at=now - timedelta(days=8))
    analyze()
    due = keepalive.channels_due()
    assert sorted(due.values_list("pk", flat=True)) == sorted(c.pk for c in stale)
    plan = plan_of(*due.values("pk").query.sql_with_params())
    assert "integrations_channel_ka_ends" in plan and "integrations_channel_ka_stale" in plan, plan
    assert "Seq Scan" not in plan, plan


# --- the migration -------------------------------------------------------------------------------------------------
def test_the_index_migration_only_adds_indexes_concurrently_outside_a_transaction():
    """No column changes (so no table rewrite), every index built CONCURRENTLY on PostgreSQL, which needs a
    non-atomic migration."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    found = [
        migration
        for (app, _), migration in loader.disk_migrations.items()
        if app == "integrations" and any(isinstance(op, AddIndexConcurrently) for op in migration.operations)
    ]
    assert found
    for migration in found:
        assert migration.atomic is False
        for operation in migration.operations:
            assert isinstance(operation, AddIndexConcurrently | migrations.AlterModelOptions), operation


@pytest.mark.postgres
def test_the_index_migration_builds_concurrently_on_postgresql(django_db_blocker):
    needs_postgres()
    from io import StringIO

    from django.core.management import call_command

    loader = MigrationLoader(None, ignore_no_migrations=True)
    [name] = [
        name
        for (app, name), migration in loader.disk_migrations.items()
        if app == "integrations" and any(isinstance(op, AddIndexConcurrently) for op in migration.operations)
    ]
    out = StringIO()
    call_command("sqlmigrate", "integrations", name, stdout=out)
    creates = [line for line in out.getvalue().splitlines() if line.startswith("CREATE")]
    assert creates and all(line.startswith("CREATE INDEX CONCURRENTLY") for line in creates)
    assert "BEGIN" not in out.getvalue()


# --- the admin -----------------------------------------------------------------------------------------------------
ADMIN_POSTS = "/admin/integrations/post/"
ADMIN_CHANNELS = "/admin/integrations/channel/"


def listed(response) -> set[int]:
    import re

    return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())}


def test_admin_search_resolves_handles_dids_usernames_uris_and_numbers_and_text_only_when_asked(
    admin_client, user, other_user
):
    mine = make_channels(user, 2)
    theirs = make_channels(other_user, 1, start=50)
    mine_posts, their_posts = make_posts(user, mine[1], 3), make_posts(other_user, theirs[0], 2)
    [uri] = published_uris(theirs[0], 1)
    uri_post = PostPart.objects.get(uri=uri).post_id

    assert listed(admin_client.get(ADMIN_CHANNELS, {"q": "@page0001"})) == {mine[1].pk}  # the start of a handle
    assert listed(admin_client.get(ADMIN_CHANNELS, {"q": theirs[0].did})) == {theirs[0].pk}
    assert listed(admin_client.get(ADMIN_CHANNELS, {"q": "bo"})) == {theirs[0].pk}  # the owner's username
    assert listed(admin_client.get(ADMIN_CHANNELS, {"q": "age0001"})) == set()  # not the middle of a handle

    assert listed(admin_client.get(ADMIN_POSTS, {"q": "page0001"})) == {p.pk for p in mine_posts}
    assert listed(admin_client.get(ADMIN_POSTS, {"q": "alice"})) == {p.pk for p in mine_posts}
    assert listed(admin_client.get(ADMIN_POSTS, {"q": uri})) == {uri_post}
    assert listed(admin_client.get(ADMIN_POSTS, {"q": f"#{their_posts[1].pk}"})) == {their_posts[1].pk}
    text = f"post {their_posts[0].pk}"  # the part's text
    assert listed(admin_client.get(ADMIN_POSTS, {"q": text})) == set()  # the text only when asked for
    assert listed(admin_client.get(ADMIN_POSTS, {"q": f"text:{text}"})) == {their_posts[0].pk}
    assert "(slower), start with text:" in admin_client.get(ADMIN_POSTS).content.decode()


def test_admin_changelists_cost_the_same_queries_with_more_rows(admin_client, user):
    channel = make_channels(user, 1)[0]
    make_posts(user, channel, 5)
    counts = []
    for more in (0, 80):
        make_posts(user, make_channels(user, 1, start=100 + more)[0], more)
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(ADMIN_POSTS).status_code == 200
            assert admin_client.get(ADMIN_CHANNELS).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_the_admin_channel_page_shows_the_latest_events_only(admin_client, user, settings):
    settings.INTEGRATIONS_EVENTS_SHOWN = 5
    channel = make_channels(user, 1)[0]
    for n in range(12):
        channel.record_event("refreshed", detail=f"event number {n:02d}")
    page = admin_client.get(f"{ADMIN_CHANNELS}{channel.pk}/change/").content.decode()
    assert [n for n in range(12) if f"event number {n:02d}" in page] == [7, 8, 9, 10, 11]
    assert "Channel events: the latest 5 (events are kept 90 days)" in page


def test_a_big_changelist_is_counted_by_the_planners_estimate_on_postgresql(user, monkeypatch):
    from integrations import admin as integrations_admin

    channel = make_channels(user, 1)[0]
    make_posts(user, channel, 300)
    analyze()
    monkeypatch.setattr(integrations_admin, "EXACT_COUNT_BELOW", 100)
    with CaptureQueriesContext(connection) as queries:
        count = integrations_admin.estimated_count(Post.objects.all())
    counted = any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    if connection.vendor == "postgresql":
        assert not counted and 200 <= count <= 400  # the statistics' estimate, not a count of every row
    else:
        assert counted and count == 300  # SQLite: counted exactly
    monkeypatch.setattr(integrations_admin, "EXACT_COUNT_BELOW", 10_000)
    assert integrations_admin.estimated_count(Post.objects.all()) == 300  # a small table: exact


# --- the composer for a user with many channels --------------------------------------------------------------------
COMPOSE = "/app/posts/new"


def choices(page: str) -> list[int]:
    import re

    return [int(pk) for pk in re.findall(r'<input type="radio" name="channel" id="channel-(\d+)"', page)]


def test_the_composer_lists_20_channels_and_finds_the_others(alice_client, user, other_user):
    channels = make_channels(user, 30)
    make_channels(other_user, 3, start=25)  # the same handles, another user's: never offered
    page = alice_client.get(COMPOSE).content.decode()
    assert choices(page) == [c.pk for c in channels[:20]]
    assert 'type="search"' in page and "Showing 20 of your 30 channels" in page

    found = alice_client.get("/app/posts/new/channels", {"q": "page002", "chosen": channels[3].pk}).content.decode()
    assert sorted(choices(found)) == sorted([channels[3].pk] + [c.pk for c in channels[20:30]])
    assert f'id="channel-{channels[3].pk}" value="{channels[3].pk}"\n    checked' in found  # the choice is kept

    none = alice_client.get("/app/posts/new/channels", {"q": "nothing-like-it"}).content.decode()
    assert choices(none) == [] and "None of your channels matches" in none


def test_without_the_script_find_keeps_the_draft_and_a_far_channel_can_be_chosen(alice_client, user):
    from tests.web.test_posts_web import body

    channels = make_channels(user, 30)
    far = channels[27]
    found = alice_client.post(COMPOSE, body(far, "my draft", action="find", channel_query="page0027"))
    assert found.status_code == 200
    assert choices(found.content.decode()) == [far.pk] and "my draft" in found.content.decode()

    when = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    done = alice_client.post(COMPOSE, body(far, "on a far channel", scheduled_at=when, time_zone="UTC"))
    assert done.status_code == 302
    assert Post.objects.get().channel_id == far.pk


def test_the_composer_opens_on_the_channel_last_used_even_when_it_is_not_among_the_first_20(alice_client, user):
    channels = make_channels(user, 30)
    far = channels[27]
    make_posts(user, channels[2], 1)
    make_posts(user, far, 1)  # the latest
    page = alice_client.get(COMPOSE).content.decode()
    assert far.pk in choices(page) and len(choices(page)) == 21
    assert f'id="channel-{far.pk}" value="{far.pk}"\n    checked' in page


@pytest.mark.parametrize("odd", ["\x00", "x\x00y", "9" * 40, "@" * 300])
def test_odd_searches_find_nothing_and_never_fail(alice_client, admin_client, user, odd):
    make_channels(user, 25)
    assert alice_client.get("/app/posts/new/channels", {"q": odd, "chosen": odd}).status_code == 200
    assert alice_client.get(COMPOSE, {"channel": odd}).status_code == 200
    for url in (ADMIN_CHANNELS, ADMIN_POSTS):
        assert admin_client.get(url, {"q": odd}).status_code == 200
