"""Record keys: every post of a repository gets its own, whatever the posts' ids and times (a property test)."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.bluesky.plans import MAX_PLANNED_PARTS, MAX_POST_ID, TID_ALPHABET, part_keys, tid_time

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2254, 12, 31, tzinfo=UTC)  # TIDs hold microseconds until 2255

post_ids = st.integers(min_value=1, max_value=MAX_POST_ID)
moments = st.datetimes(
    min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None), timezones=st.just(UTC)
)
counts = st.integers(min_value=1, max_value=MAX_PLANNED_PARTS)


def valid_tid(key: str) -> bool:
    return len(key) == 13 and key[0] in "234567abcdefghij" and all(char in TID_ALPHABET for char in key)


def test_posts_whose_ids_differ_by_1024_and_times_by_a_millisecond_get_different_keys():
    """What the attack found: two scheduled posts of one repository planned the same key (the second failed as
    record_conflict at its time)."""
    moment = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    first = part_keys(5, moment, 3)
    second = part_keys(5 + 1024, moment - timedelta(milliseconds=1), 3)
    assert not set(first) & set(second)


@settings(max_examples=3000, deadline=None)
@given(post_ids, post_ids, moments, moments, counts, counts)
def test_two_posts_never_share_a_record_key(first_id, second_id, first_time, second_time, first_count, second_count):
    if first_id == second_id:
        second_id = first_id % MAX_POST_ID + 1
    first = part_keys(first_id, first_time, first_count)
    second = part_keys(second_id, second_time, second_count)
    assert not set(first) & set(second)


@settings(max_examples=1000, deadline=None)
@given(post_ids, moments, counts)
def test_a_posts_keys_are_valid_tids_in_thread_order_and_the_same_every_time(post_id, moment, count):
    keys = part_keys(post_id, moment, count)
    assert all(valid_tid(key) for key in keys)
    assert keys == sorted(keys) and len(set(keys)) == count  # the thread's order, no two parts alike
    assert part_keys(post_id, moment, count) == keys  # derived, not drawn: a retry finds the same keys
    # The key says (roughly) when: within the window that keeps posts apart.
    assert abs(tid_time(keys[0]) - moment) < timedelta(hours=1, minutes=12)


@settings(max_examples=300, deadline=None)
@given(post_ids, moments, moments)
def test_keys_follow_time_from_one_window_to_the_next(post_id, earlier, later):
    earlier, later = sorted((earlier, later))
    if later - earlier > timedelta(hours=1, minutes=12):
        assert part_keys(post_id, earlier, 1) < part_keys(post_id, later, 1)
