"""Publishing exactly once, against the real local PDS, with a proxy in front of it that loses answers on demand."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection

from integrations.bluesky.posts.accept import ImageRequest, PartRequest, accept
from integrations.bluesky.posts.deletion import delete
from integrations.bluesky.posts.media import purge_unused_media, store_media
from integrations.bluesky.posts.plans import PartInput, blob_cid, part_keys, record_cid, tid, tid_time
from integrations.bluesky.posts.store import create_post
from integrations.bluesky.posts.submit import _reconcile, _write, publish, publish_due, retry_delay
from integrations.exceptions import ChannelNotReady, PostBusy
from integrations.models import Channel, Post
from integrations.posting.due import due_posts
from tests.support.faultproxy import FaultProxy

pytestmark = [pytest.mark.pds, pytest.mark.django_db(transaction=True)]


def records(pds, did: str) -> list[dict]:
    """What the repository really holds (read from the PDS, not through the code under test)."""
    found, cursor = [], None
    while True:
        params = {"repo": did, "collection": "app.bsky.feed.post", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = pds.xrpc("GET", "com.atproto.repo.listRecords", params=params).json()
        found += page["records"]
        cursor = page.get("cursor")
        if not cursor or not page["records"]:
            return found


def thread(*texts: str) -> list[PartInput]:
    return [PartInput(text=text, langs=["en"]) for text in texts]


@pytest.fixture
def proxy(use_pds, channel):
    """The channel's calls go through the fault proxy to the real PDS."""
    fault_proxy = FaultProxy(upstream_port=use_pds.port)
    Channel.objects.filter(pk=channel.pk).update(pds_endpoint=fault_proxy.url)
    channel.refresh_from_db()
    yield fault_proxy
    fault_proxy.stop()


# --- the plan ---------------------------------------------------------------------------------------------------
def test_tids_are_valid_sortable_and_carry_their_time():
    moment = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
    keys = part_keys(42, moment, 3)
    assert all(len(key) == 13 and key[0] in "234567abcdefghij" for key in keys)
    assert keys == sorted(keys) and len(set(keys)) == 3
    assert tid_time(keys[0]) == moment
    assert part_keys(42, moment, 3) == keys  # derived, not random: every attempt uses the same keys
    assert part_keys(43, moment, 3) != keys
    assert tid(0, 0) == "2222222222222"


def test_a_thread_is_published_in_order_with_the_cids_computed_here(use_pds, channel, user, account):
    post = create_post(user, channel, thread("one 🦋", "two", "three"))
    outcome = publish(post.pk)
    assert outcome.error is None
    assert outcome.post.status == Post.Status.PUBLISHED
    parts = list(post.parts.all())
    assert [p.cid for p in parts] == [p.expected_cid for p in parts]  # our DAG-CBOR CIDs are the PDS's
    stored = {r["uri"]: r for r in records(use_pds, account.did)}
    assert [stored[p.uri]["value"]["text"] for p in parts] == ["one 🦋", "two", "three"]
    assert [stored[p.uri]["cid"] for p in parts] == [p.expected_cid for p in parts]
    second, third = stored[parts[1].uri]["value"], stored[parts[2].uri]["value"]
    assert second["reply"]["root"] == {"uri": parts[0].uri, "cid": parts[0].cid}
    assert second["reply"]["parent"] == {"uri": parts[0].uri, "cid": parts[0].cid}
    assert third["reply"]["parent"] == {"uri": parts[1].uri, "cid": parts[1].cid}
    assert third["reply"]["root"] == {"uri": parts[0].uri, "cid": parts[0].cid}
    assert "reply" not in stored[parts[0].uri]["value"]
    # Publishing again changes nothing.
    assert publish(post.pk).post.status == Post.Status.PUBLISHED
    assert len(records(use_pds, account.did)) == 3


def test_local_cids_match_for_records_with_blobs_and_facets():
    record = {
        "$type": "app.bsky.feed.post",
        "text": "see example.com",
        "createdAt": "2026-11-23T12:00:00.000Z",
        "facets": [
            {
                "index": {"byteStart": 4, "byteEnd": 15},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}],
            }
        ],
        "embed": {
            "$type": "app.bsky.embed.images",
            "images": [
                {
                    "alt": "a dot",
                    "image": {"$type": "blob", "ref": {"$link": blob_cid(b"png")}, "mimeType": "image/png", "size": 3},
                    "aspectRatio": {"width": 1, "height": 1},
                }
            ],
        },
    }
    assert record_cid(record).startswith("bafyrei")
    assert record_cid(record) == record_cid(dict(reversed(list(record.items()))))  # canonical, whatever the order
    assert blob_cid(b"png").startswith("bafkrei")


# --- exactly once when the network misbehaves --------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["drop_after", "drop_before", "503"])
def test_after_a_lost_or_refused_write_each_part_exists_exactly_once(mode, proxy, use_pds, channel, user, account):
    post = create_post(user, channel, thread("first", "second", "third"))
    proxy.fail("com.atproto.repo.applyWrites", mode)
    if mode == "drop_after":
        # The answer is lost but the write landed: reading the planned keys back finds all three.
        proxy.fail("com.atproto.repo.getRecord", "drop_before")  # ...and the first look fails too
    outcome = publish(post.pk)
    assert proxy.applied  # the fault really happened
    attempts = 1
    while outcome.post.status == Post.Status.WAITING and attempts < 5:
        assert outcome.post.next_attempt_at is not None and outcome.error.temporary
        outcome = publish(post.pk, retry=True)
        attempts += 1
    assert outcome.post.status == Post.Status.PUBLISHED
    assert len(records(use_pds, account.did)) == 3  # not 6, not 0
    texts = sorted(r["value"]["text"] for r in records(use_pds, account.did))
    assert texts == ["first", "second", "third"]


def test_a_retry_that_meets_its_own_records_reconciles_instead_of_writing_again(proxy, use_pds, channel, user, account):
    post = create_post(user, channel, thread("only once"))
    proxy.fail("com.atproto.repo.applyWrites", "drop_after")
    proxy.fail("com.atproto.repo.getRecord", "503")  # the look right after the loss fails too
    first = publish(post.pk)
    assert first.post.status == Post.Status.WAITING
    second = publish(post.pk, retry=True)
    assert second.post.status == Post.Status.PUBLISHED
    writes = [path for path in proxy.seen if "applyWrites" in path]
    assert len(writes) == 1  # the retry found the record and wrote nothing
    assert len(records(use_pds, account.did)) == 1


def test_two_workers_publishing_one_post_at_once_write_it_once(use_pds, channel, user, account):
    post = create_post(user, channel, thread("a", "b"))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker():
        try:
            barrier.wait()
            try:
                outcomes.append(publish(post.pk).post.status)
            except PostBusy:
                outcomes.append("busy")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) in (["busy", "published"], ["published", "published"])
    assert Post.objects.get(pk=post.pk).status == Post.Status.PUBLISHED
    assert len(records(use_pds, account.did)) == 2


def test_a_channel_that_needs_reconnection_fails_the_post_and_a_retry_after_reconnecting_publishes_it(
    use_pds, channel, user, account
):
    from integrations.bluesky import services

    post = create_post(user, channel, thread("later"))
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.NEEDS_RECONNECTION)
    outcome = publish(post.pk)
    assert outcome.post.status == Post.Status.FAILED
    assert isinstance(outcome.error, ChannelNotReady)
    assert "Reconnect" in outcome.post.error_message
    services.connect(user, account.handle, account.app_passwords[0])
    assert publish(post.pk, retry=True).post.status == Post.Status.PUBLISHED
    assert len(records(use_pds, account.did)) == 1


def test_deleting_a_published_post_deletes_its_records(use_pds, channel, user, account):
    post = create_post(user, channel, thread("x", "y"))
    publish(post.pk)
    assert len(records(use_pds, account.did)) == 2
    delete(Post.objects.get(pk=post.pk))
    assert records(use_pds, account.did) == []
    assert not Post.objects.filter(pk=post.pk).exists()


def test_a_post_whose_worker_died_is_picked_up_once_its_lease_runs_out(proxy, use_pds, channel, user, account):
    from datetime import timedelta

    from django.utils import timezone

    post = create_post(user, channel, thread("orphan", "reply"), claim=True)
    # The worker wrote the records, then died before it could store anything.
    proxy.fail("com.atproto.repo.applyWrites", "drop_after")
    outcome = publish(post.pk, claimed=post)
    assert outcome.post.status == Post.Status.PUBLISHED  # it looked and found them at once
    assert len(records(use_pds, account.did)) == 2

    orphan = create_post(user, channel, thread("never attempted"), claim=True)
    assert due_posts() == []  # its lease still runs
    with pytest.raises(PostBusy):
        publish(orphan.pk, retry=True)
    Post.objects.filter(pk=orphan.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert due_posts() == [orphan.pk]
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert len(records(use_pds, account.did)) == 3
    assert due_posts() == []


def test_posts_wait_while_bluesky_is_switched_off_and_go_out_when_it_is_back(use_pds, channel, user, account):
    from datetime import timedelta

    from django.utils import timezone

    from integrations.models import IntegrationOption

    post = create_post(user, channel, thread("patience"))
    switch = IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    outcome = publish(post.pk)
    assert outcome.post.status == Post.Status.WAITING  # waiting, not failed
    assert outcome.post.error_code == "integration_disabled"
    assert records(use_pds, account.did) == []
    switch.value = "enabled"
    switch.save()
    Post.objects.filter(pk=post.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert publish_due() == {Post.Status.PUBLISHED: 1}
    assert len(records(use_pds, account.did)) == 1


def test_the_owner_is_told_once_when_a_post_fails_for_good(use_pds, channel, user, account):
    from django.core import mail

    from integrations.signals import post_failed, post_published

    user.email = "alice@example.com"
    user.save()
    seen = []

    def receiver(sender, post, **kwargs):
        seen.append((post.pk, kwargs.get("error_code")))

    post_failed.connect(receiver)
    post_published.connect(receiver)
    try:
        good = create_post(user, channel, thread("fine"))
        publish(good.pk)
        bad = create_post(user, channel, thread("doomed"))
        Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.SUSPENDED)
        publish(bad.pk)
    finally:
        post_failed.disconnect(receiver)
        post_published.disconnect(receiver)
    assert seen == [(good.pk, None), (bad.pk, "channel_not_ready")]
    [message] = [m for m in mail.outbox if "could not be published" in m.subject]
    assert message.to == ["alice@example.com"] and "doomed" in message.body


def test_uploads_are_removed_a_day_after_no_unpublished_post_needs_them(use_pds, channel, user, account):
    import io
    import os
    from datetime import timedelta

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone
    from PIL import Image

    from integrations.models import Media

    def upload(colour):
        buffer = io.BytesIO()
        Image.new("RGB", (20, 10), colour).save(buffer, "PNG")
        return store_media(user, SimpleUploadedFile("x.png", buffer.getvalue()))

    used, unused, fresh, waiting = upload("navy"), upload("red"), upload("green"), upload("white")
    used_path = used.file.path
    post = accept(user, channel, [PartRequest(text="pic", images=(ImageRequest(used.pk, "navy"),))])
    assert publish(post.pk, claimed=post).post.status == Post.Status.PUBLISHED
    assert Media.objects.filter(pk=used.pk).exists()  # the client may attach it to its next post, on another channel
    accept(
        user,
        channel,
        [PartRequest(text="later", images=(ImageRequest(waiting.pk, "white"),))],
        scheduled_at=timezone.now() + timedelta(days=3),
    )
    two_days_ago = timezone.now() - timedelta(days=2)
    Media.objects.filter(pk__in=[used.pk, unused.pk, waiting.pk]).update(used_at=two_days_ago)
    assert purge_unused_media() == 2
    assert sorted(Media.objects.values_list("pk", flat=True)) == sorted([fresh.pk, waiting.pk])
    assert not os.path.exists(used_path)


def test_writing_a_planned_key_that_is_already_there_is_reconciled_not_repeated(use_pds, channel, user, account):
    """The reference PDS answers a create on a used key with a 500: that answer is reconciled like a lost one."""
    from integrations.bluesky.xrpc import errors

    post = create_post(user, channel, thread("already there"))
    assert publish(post.pk).post.status == Post.Status.PUBLISHED
    parts = list(Post.objects.get(pk=post.pk).parts.all())
    for part in parts:  # as if the answer had been lost: nothing known locally
        part.uri = part.cid = ""
    with pytest.raises(errors.TemporaryError) as refused:
        _write(channel, parts, reconcile_first=False)
    assert refused.value.status_code == 500  # what the PDS says to a second create under the same key
    assert _reconcile(channel, parts)  # ...and what publish() does next: finds it, writes nothing
    assert len(records(use_pds, account.did)) == 1


def test_a_rate_limit_delays_a_post_however_long_and_never_fails_it():
    from integrations.bluesky.xrpc import errors

    limited = errors.RateLimited(retry_after=3600)
    assert retry_delay(1, limited) == 3600
    assert retry_delay(50, limited) == 3600  # long after other faults would have given up
    assert retry_delay(50, errors.PdsServerError()) is None


def test_posts_planned_for_the_same_moment_never_share_a_record_key():
    """Scheduled posts often share their time: 1,000 posts due at once in one repository met 5 key collisions
    (record_conflict) in the scheduling benchmark before keys took the post's id into account."""
    moment = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    taken: set[str] = set()
    keys = []
    for post_id in range(1, 5001):  # planned one after another, as `create_post` does (it reads what is taken)
        planned = part_keys(post_id, moment, 3, taken)
        taken.update(planned)
        keys += planned
    assert len(set(keys)) == len(keys) == 15_000
    assert all(len(key) == 13 and key[0] in "234567abcdefghij" for key in keys)
