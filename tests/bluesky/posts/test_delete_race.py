"""A delete racing a publish: the user's "Publish again", the worker's retry or a first attempt still running. The
delete waits for (or stops) the attempt, then every record that landed is deleted: no ghost records on the PDS,
read back from the PDS itself (issue 16, item 4). The PDS sits behind the fault proxy, which holds a request in
flight for as long as the race needs."""

import io
import threading
import time

import pytest
from django.db import connection
from rest_framework.test import APIClient

from integrations import tasks
from integrations.bluesky.posts import deletion
from integrations.bluesky.posts.deletion import delete
from integrations.bluesky.posts.media import store_media
from integrations.bluesky.posts.plans import PartInput, PlannedImage, blob_cid
from integrations.bluesky.posts.store import create_post
from integrations.bluesky.posts.submit import publish
from integrations.exceptions import PostDeleting, PostGone
from integrations.models import Post
from tests.bluesky.posts.test_publishing import proxy, records, thread  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.pds, pytest.mark.django_db(transaction=True)]


def in_thread(target) -> tuple[threading.Thread, list]:
    """Run `target` in a thread with its own database connection; its result (or exception) lands in the list."""
    result: list = []

    def run():
        try:
            result.append(target())
        except Exception as exc:
            result.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    return worker, result


def waiting_post(proxy, user, channel, *texts: str) -> Post:  # noqa: F811
    """A post whose first attempt met a 503: it waits for the worker's retry."""
    post = create_post(user, channel, thread(*texts))
    proxy.fail("com.atproto.repo.applyWrites", "503")
    assert publish(post.pk).post.status == Post.Status.WAITING
    return post


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_delete_during_the_workers_retry_waits_for_it_and_leaves_no_record(
    proxy,  # noqa: F811
    use_pds,
    channel,
    user,
    account,
):
    post = waiting_post(proxy, user, channel, "one", "two", "three")
    held = proxy.hold("com.atproto.repo.applyWrites")
    worker, outcome = in_thread(lambda: tasks.publish_post.call(post.pk))
    assert held.reached.wait(30)  # the retry is writing the thread now
    deleting, answer = in_thread(lambda: api_for(user).delete(f"/api/v1/posts/{post.pk}/"))
    time.sleep(0.5)  # the delete waits for the attempt...
    assert deleting.is_alive()
    held.release()  # ...which writes its three records, sees the delete, and deletes them
    worker.join(60)
    deleting.join(60)
    assert answer[0].status_code == 204, answer[0].content
    assert outcome == [Post.Status.DELETING]
    assert records(use_pds, account.did) == []
    assert not Post.objects.exists()


def test_a_delete_that_read_the_post_before_the_retry_started_leaves_no_ghost(
    proxy,  # noqa: F811
    use_pds,
    channel,
    user,
    account,
):
    """What the attack found: the delete read the post (no attempt running), the worker's retry started and wrote,
    the delete removed the keys that were not there yet and forgot the post: three records nobody could delete."""
    post = waiting_post(proxy, user, channel, "one", "two", "three")
    as_read = Post.objects.select_related("channel").get(pk=post.pk)
    held = proxy.hold("com.atproto.repo.applyWrites")
    worker, _ = in_thread(lambda: publish(post.pk, retry=True))  # the user's "Publish again"
    assert held.reached.wait(30)
    deleting, result = in_thread(lambda: delete(as_read))
    time.sleep(0.5)
    held.release()
    worker.join(60)
    deleting.join(60)
    assert result == [None]
    assert records(use_pds, account.did) == []
    assert not Post.objects.exists()


def test_a_delete_while_the_images_go_up_stops_the_attempt_before_it_writes(
    proxy,  # noqa: F811
    use_pds,
    channel,
    user,
    account,
    settings,
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), "teal").save(buffer, "PNG")
    media = store_media(user, SimpleUploadedFile("x.png", buffer.getvalue()))
    with media.file.open("rb") as handle:
        data = handle.read()
    image = PlannedImage(blob_cid(data), media.mime, media.size, media.width, media.height, "teal", media.pk)
    post = create_post(user, channel, [PartInput(text="with a picture", images=[image])])
    held = proxy.hold("com.atproto.repo.uploadBlob")
    worker, outcome = in_thread(lambda: publish(post.pk))
    assert held.reached.wait(30)
    deleting, result = in_thread(lambda: delete(Post.objects.get(pk=post.pk)))
    time.sleep(0.5)
    held.release()
    worker.join(60)
    deleting.join(60)
    assert result == [None]
    assert isinstance(outcome[0].error, PostGone)
    assert not any("applyWrites" in path for path in proxy.seen)  # nothing was written
    assert records(use_pds, account.did) == [] and not Post.objects.exists()


def test_records_that_landed_unknown_are_deleted_and_the_later_retry_finds_nothing(
    proxy,  # noqa: F811
    use_pds,
    channel,
    user,
    account,
):
    post = create_post(user, channel, thread("landed", "unknown"))
    proxy.fail("com.atproto.repo.applyWrites", "drop_after")  # written, answer lost...
    proxy.fail("com.atproto.repo.getRecord", "503")  # ...and not found out yet
    assert publish(post.pk).post.status == Post.Status.WAITING
    assert len(records(use_pds, account.did)) == 2
    assert api_for(user).delete(f"/api/v1/posts/{post.pk}/").status_code == 204
    assert records(use_pds, account.did) == []
    assert tasks.publish_post.call(post.pk) == "nothing to do"  # the retry that was queued for it
    assert records(use_pds, account.did) == []


def test_an_attempt_still_running_after_the_wait_deletes_the_post_when_it_ends(
    proxy,  # noqa: F811
    use_pds,
    channel,
    user,
    account,
    monkeypatch,
):
    monkeypatch.setattr(deletion, "DELETE_WAIT", 0.6)
    post = waiting_post(proxy, user, channel, "slow")
    held = proxy.hold("com.atproto.repo.applyWrites")
    worker, _ = in_thread(lambda: publish(post.pk, retry=True))
    assert held.reached.wait(30)
    answer = api_for(user).delete(f"/api/v1/posts/{post.pk}/")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "post_deleting"
    assert 1 <= int(answer["Retry-After"]) <= 121
    listed = api_for(user).get(f"/api/v1/posts/{post.pk}/").json()
    assert listed["status"] == "deleting"
    held.release()
    worker.join(60)
    assert records(use_pds, account.did) == [] and not Post.objects.exists()


def test_a_delete_bluesky_cannot_answer_leaves_the_post_deleting_and_a_second_delete_finishes(
    proxy,  # noqa: F811
    use_pds,
    channel,
    user,
    account,
    alice_client,
):
    post = create_post(user, channel, thread("first", "second"))
    assert publish(post.pk).post.status == Post.Status.PUBLISHED
    proxy.fail("com.atproto.repo.getRecord", "503")
    answer = api_for(user).delete(f"/api/v1/posts/{post.pk}/")
    assert answer.status_code >= 500 and answer.json()["error"]["code"] == "pds_error"
    stored = Post.objects.get(pk=post.pk)
    assert stored.status == Post.Status.DELETING and stored.lease_until is None and stored.error_message
    assert len(records(use_pds, account.did)) == 2
    page = alice_client.get("/app/posts").content.decode()
    assert "Being deleted" in page and "Delete it again to finish" in page
    assert api_for(user).post(f"/api/v1/posts/{post.pk}/publish/").json()["error"]["code"] == "post_gone"
    assert api_for(user).delete(f"/api/v1/posts/{post.pk}/").status_code == 204
    assert records(use_pds, account.did) == [] and not Post.objects.exists()


def test_deleting_a_post_that_was_never_sent_calls_nothing(proxy, use_pds, channel, user):  # noqa: F811
    post = create_post(user, channel, thread("never sent"))
    delete(post)
    assert not Post.objects.exists()
    assert not any("deleteRecord" in path or "getRecord" in path for path in proxy.seen)
    with pytest.raises(PostGone):
        delete(post)
    assert PostDeleting.code == "post_deleting"
