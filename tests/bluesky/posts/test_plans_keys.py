"""Record keys: no two posts of a repository plan the same key, whatever their ids and times, and a key says when
its post was made (issue 16, item 22). Property tests on `plans.part_keys`, and the database's part of it."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.bluesky.posts.plans import MAX_PLANNED_PARTS, TID_ALPHABET, part_keys, tid_time

EARLIEST = datetime(2000, 1, 1)
LATEST = datetime(2254, 12, 31)  # TIDs hold microseconds until 2255

post_ids = st.integers(min_value=1, max_value=2**63 - 1)
moments = st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.just(UTC))
counts = st.integers(min_value=1, max_value=25)
# Posts crowd a few moments (scheduled for the same minute, a millisecond apart), with ids 1,024 apart among others.
BUSY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
crowded_moments = st.sampled_from([BUSY + timedelta(microseconds=delta) for delta in (0, 1, 2, 999, 1000, 1001, 25)])
crowded_ids = st.sampled_from([5, 6, 5 + 1024, 5 + 2048, 1029, 1, 1025, 2**40 + 5])


def valid_tid(key: str) -> bool:
    return len(key) == 13 and key[0] in "234567abcdefghij" and all(char in TID_ALPHABET for char in key)


def plan_one_after_another(posts: list[tuple[int, datetime, int]]) -> list[list[str]]:
    """Plan posts of one repository in turn, each seeing the keys planned before it (what `publishing` reads)."""
    taken: set[str] = set()
    planned = []
    for post_id, moment, count in posts:
        keys = part_keys(post_id, moment, count, taken)
        taken.update(keys)
        planned.append(keys)
    return planned


def test_posts_whose_ids_differ_by_1024_and_times_by_a_millisecond_get_different_keys():
    """What the attack found: the second of these scheduled posts planned the first one's keys (and failed as
    record_conflict at its time)."""
    first, second = plan_one_after_another([(5, BUSY, 3), (5 + 1024, BUSY - timedelta(milliseconds=1), 3)])
    assert not set(first) & set(second)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(crowded_ids, crowded_moments, counts), min_size=2, max_size=40, unique_by=lambda p: p[0]))
def test_posts_planned_one_after_another_never_share_a_key(posts):
    planned = plan_one_after_another(posts)
    every_key = [key for keys in planned for key in keys]
    assert len(every_key) == len(set(every_key))


@settings(max_examples=1000, deadline=None)
@given(post_ids, moments, counts, st.sets(st.text(TID_ALPHABET, min_size=13, max_size=13), max_size=5))
def test_keys_are_valid_tids_in_thread_order_outside_what_is_taken_and_the_same_every_time(post_id, moment, n, taken):
    keys = part_keys(post_id, moment, n, taken)
    assert all(valid_tid(key) for key in keys)
    assert keys == sorted(keys) and len(set(keys)) == n
    assert not set(keys) & taken
    assert part_keys(post_id, moment, n, taken) == keys  # derived, not drawn: the plan is the post's


@settings(max_examples=500, deadline=None)
@given(post_ids, moments, counts)
def test_with_nothing_near_taken_a_key_is_its_posts_moment_to_the_microsecond(post_id, moment, count):
    keys = part_keys(post_id, moment, count)
    assert [tid_time(key) for key in keys] == [moment + timedelta(microseconds=index) for index in range(count)]


def test_a_moment_crowded_with_1024_posts_moves_the_next_one_past_their_parts():
    taken = {key for post_id in range(1024) for key in part_keys(post_id, BUSY, 2)}
    keys = part_keys(7, BUSY, 2, taken)
    assert not set(keys) & taken and tid_time(keys[0]) == BUSY + timedelta(microseconds=2)


def test_a_thread_has_at_most_its_planned_parts():
    with pytest.raises(ValueError):
        part_keys(1, BUSY, MAX_PLANNED_PARTS + 1)


@pytest.mark.pds
@pytest.mark.django_db
def test_posts_stored_for_nearby_moments_on_one_account_plan_apart_through_the_database(user, channel, use_pds):
    """Through `create_post`: the second post's id is the first's plus 1,024 and its time a millisecond earlier,
    which planned the first post's keys before. It also holds when a post is moved next to another."""
    from integrations.bluesky.posts.plans import PartInput
    from integrations.bluesky.posts.schedule import reschedule
    from integrations.bluesky.posts.store import create_post
    from integrations.models import Post

    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    first = create_post(user, channel, [PartInput(text="a"), PartInput(text="b")], scheduled_at=when)
    filler = Post.objects.bulk_create(Post(user=user, channel=channel) for _ in range(1023))
    Post.objects.filter(pk__in=[post.pk for post in filler]).delete()
    second = create_post(
        user, channel, [PartInput(text="c"), PartInput(text="d")], scheduled_at=when - timedelta(milliseconds=1)
    )
    assert second.pk == first.pk + 1024
    keys = [set(post.parts.values_list("rkey", flat=True)) for post in (first, second)]
    assert not keys[0] & keys[1]
    third = create_post(user, channel, [PartInput(text="e")], scheduled_at=when + timedelta(hours=1))
    reschedule(third, when)  # onto the first post's moment
    assert not set(third.parts.values_list("rkey", flat=True)) & keys[0]
