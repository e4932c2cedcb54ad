"""Publishing benchmarks (`python -m bench publish`): against the local reference PDS.

- A text post through the service layer (accept → plan → claim → applyWrites → stored) vs a raw `createRecord`
  with the same token, both through a proxy adding 20 ms each way (a PDS across a network): ratio, target ≤ 1.15.
  Against the loopback PDS the overhead is reported in milliseconds (informational: there the PDS's ~11-ms write
  makes the ratio a measure of this disk's flushes).
- A fault run: posts (a third of them 3-part threads with an image) published through a proxy that drops 10 % of
  the write answers after the PDS committed and answers 503 to another 10 %; every post retried until it is
  published: records in the repository = parts planned, duplicates 0, lost 0.
"""

import io
import statistics
import time
from collections import Counter
from collections.abc import Callable

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from integrations.bluesky.posts.accept import ImageRequest, PartRequest, accept
from integrations.bluesky.posts.media import store_media
from integrations.bluesky.posts.submit import publish, publish_due
from integrations.bluesky.xrpc.client import PdsClient
from integrations.models import Channel, Post
from tests.support.faultproxy import FaultProxy

Row = Callable[[str, str, str, bool | None], None]


def _records(pds, did: str) -> list[dict]:
    found, cursor = [], None
    while True:
        params = {
            "repo": did,
            "collection": "app.bsky.feed.post",
            "limit": 100,
            **({"cursor": cursor} if cursor else {}),
        }
        page = pds.xrpc("GET", "com.atproto.repo.listRecords", params=params).json()
        found += page["records"]
        cursor = page.get("cursor")
        if not cursor or not page["records"]:
            return found


def bench_text_post(pds, channel: Channel, row: Row, posts: int) -> None:
    print("text post: service layer vs raw createRecord", flush=True)
    raw, service = _text_posts(channel, posts)
    overhead = statistics.median(service) - statistics.median(raw)
    row(f"text post, raw createRecord (median of {posts})", f"{statistics.median(raw) * 1000:.1f} ms", "", None)
    row(
        f"text post through the service layer (median of {posts})",
        f"{statistics.median(service) * 1000:.1f} ms",
        "",
        None,
    )
    # Informational: against a loopback PDS the write itself takes ~11 ms, so a ratio mostly measures this disk's
    # flushes. What the service layer adds is reported in milliseconds; the ratio target is held where a PDS
    # really is, across a network (below).
    row(
        "publishing overhead on a loopback PDS (service minus raw)",
        f"{overhead * 1000:.1f} ms ({statistics.median(service) / statistics.median(raw):.2f} x)",
        "",
        None,
    )

    # The same against a PDS across a network: a proxy adds NETWORK_LATENCY each way to both paths alike.
    print(f"text post with {NETWORK_LATENCY * 1000:.0f} ms each way between us and the PDS", flush=True)
    proxy = FaultProxy(upstream_port=pds.port, latency=NETWORK_LATENCY)
    direct = channel.pds_endpoint
    Channel.objects.filter(pk=channel.pk).update(pds_endpoint=proxy.url)
    channel.refresh_from_db()
    try:
        raw, service = _text_posts(channel, max(posts // 4, 20))
    finally:
        proxy.stop()
        Channel.objects.filter(pk=channel.pk).update(pds_endpoint=direct)
    ratio = statistics.median(service) / statistics.median(raw)
    row(
        f"text post, {NETWORK_LATENCY * 1000:.0f} ms each way to the PDS: raw vs service (median of {len(raw)})",
        f"{statistics.median(raw) * 1000:.1f} vs {statistics.median(service) * 1000:.1f} ms",
        "",
        None,
    )
    row(
        f"publishing overhead ratio, {NETWORK_LATENCY * 1000:.0f} ms each way to the PDS",
        f"{ratio:.3f}",
        "≤ 1.15",
        ratio <= 1.15,
    )


NETWORK_LATENCY = 0.02  # one way; a PDS in another region of the same continent


def _text_posts(channel: Channel, posts: int) -> tuple[list[float], list[float]]:
    """Seconds per text post, raw createRecord and through the service layer, interleaved."""
    client = PdsClient(channel.pds_url)
    token = channel.access_jwt
    raw, service = [], []

    def raw_post(index: int) -> None:
        record = {"$type": "app.bsky.feed.post", "text": f"raw {index}", "createdAt": "2026-11-23T12:00:00.000Z"}
        client._raw.com.atproto.repo.create_record(
            {"repo": channel.did, "collection": "app.bsky.feed.post", "record": record},
            headers={"Authorization": f"Bearer {token}"},
        )

    def service_post(index: int) -> None:
        post = accept(channel.user, channel, [PartRequest(text=f"service {index}")])
        assert publish(post.pk, claimed=post).post.status == Post.Status.PUBLISHED

    for index in range(5):  # warm up both paths
        raw_post(-index)
        service_post(-index)
    for index in range(posts):  # interleaved, so drift in the PDS's speed hits both alike
        started = time.perf_counter()
        raw_post(index)
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        service_post(index)
        service.append(time.perf_counter() - started)
    return raw, service


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((320, 200), 40).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def bench_fault_run(pds, channel: Channel, row: Row, posts: int) -> None:
    print(f"fault run: {posts} posts through a proxy that loses 10 % of answers and refuses 10 %", flush=True)
    proxy = FaultProxy(upstream_port=pds.port)
    Channel.objects.filter(pk=channel.pk).update(pds_endpoint=proxy.url)
    channel.refresh_from_db()
    proxy.chaos("com.atproto.repo.", {"drop_after": 0.1, "503": 0.1}, seed=7)
    image = _png()
    planned, attempts = 0, Counter()
    started = time.perf_counter()
    try:
        for index in range(posts):
            if index % 3 == 0:
                media = store_media(channel.user, SimpleUploadedFile("p.png", image))
                parts = [
                    PartRequest(
                        text=f"thread {index} part {n}",
                        images=(ImageRequest(media.pk, "noise"),) if n == 0 else (),
                    )
                    for n in range(3)
                ]
            else:
                parts = [PartRequest(text=f"post {index}")]
            post = None
            while post is None:  # accepting reads references/handles too: it may meet the faults as well
                try:
                    post = accept(channel.user, channel, parts)
                except Exception:
                    attempts["accept retried"] += 1
            planned += len(parts)
            outcome = publish(post.pk, claimed=post)
            tries = 1
            while outcome.post.status != Post.Status.PUBLISHED and tries < 20:
                outcome = publish(post.pk, retry=True)  # no backoff wait in a benchmark
                tries += 1
            attempts[tries] += 1
    finally:
        proxy.stop()
    seconds = time.perf_counter() - started
    stored = _records(pds, channel.did)  # the channel's account is used by this run only
    texts = Counter(r["value"]["text"] for r in stored)
    duplicates = sum(count - 1 for count in texts.values() if count > 1)
    lost = max(0, planned - len(texts))
    published = Post.objects.filter(channel=channel, status=Post.Status.PUBLISHED).count()
    row(f"fault run: {posts} posts, faults injected", str(len(proxy.applied)), "", None)
    row(
        "fault run: records in the repository / parts planned",
        f"{len(stored)} / {planned}",
        "equal",
        len(stored) == planned,
    )
    row("fault run: duplicates / lost", f"{duplicates} / {lost}", "0 / 0", duplicates == 0 and lost == 0)
    row("fault run: posts published", str(published), str(posts), published == posts)
    row("fault run: wall time", f"{seconds:.1f} s", "", None)


def bench_scheduled(pds, channels: list[Channel], row: Row, posts: int) -> None:
    """Posts due in the same minute across channels, published by the workers' `publish_due` (2 on PostgreSQL,
    1 on SQLite, as deployed): all published, exactly one record each, lateness after their time, and the time
    against a raw createRecord loop over the same number of posts."""
    import threading
    from datetime import timedelta

    from django.db import connection, connections
    from django.utils import timezone

    workers = 2 if connection.vendor == "postgresql" else 1
    print(f"scheduled: {posts} posts due at once across {len(channels)} channels, {workers} worker(s)", flush=True)
    due = timezone.now() + timedelta(seconds=max(20, posts // 40))
    for index in range(posts):
        channel = channels[index % len(channels)]
        accept(channel.user, channel, [PartRequest(text=f"scheduled {index}")], scheduled_at=due)
    raw_client = PdsClient(channels[0].pds_url)
    started = time.perf_counter()
    for index in range(posts):  # the baseline: the same number of writes, one after the other, nothing stored
        channel = channels[index % len(channels)]
        record = {"$type": "app.bsky.feed.post", "text": f"raw {index}", "createdAt": "2026-11-23T12:00:00.000Z"}
        raw_client._raw.com.atproto.repo.create_record(
            {"repo": channel.did, "collection": "app.bsky.feed.post", "record": record},
            headers={"Authorization": f"Bearer {channel.access_jwt}"},
        )
    raw_seconds = time.perf_counter() - started
    while timezone.now() < due:
        time.sleep(0.05)
    started = time.perf_counter()

    pending = [Post.Status.SCHEDULED, Post.Status.PUBLISHING, Post.Status.WAITING]
    deadline = time.monotonic() + 180  # a post that met a fault waits for its retry, as in production

    def worker() -> None:
        try:
            while Post.objects.filter(status__in=pending).exists() and time.monotonic() < deadline:
                if not publish_due():
                    time.sleep(0.05)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    scheduled = Post.objects.filter(scheduled_at=due)
    lateness = sorted((p.published_at - p.scheduled_at).total_seconds() for p in scheduled if p.published_at)
    published = sum(1 for p in scheduled if p.status == Post.Status.PUBLISHED)
    stored = sum(
        1 for channel in channels for r in _records(pds, channel.did) if r["value"]["text"].startswith("scheduled ")
    )

    def at(q: float) -> float:
        return lateness[min(len(lateness) - 1, int(q * len(lateness)))] if lateness else float("nan")

    row(
        f"scheduled: {posts} posts, {workers} worker(s): published / records",
        f"{published} / {stored}",
        str(posts),
        published == posts == stored,
    )
    retried = sum(1 for p in scheduled if p.attempts > 1)
    row("scheduled: lateness after their time p50 / p95", f"{at(0.5):.1f} / {at(0.95):.1f} s", "", None)
    row("scheduled: posts that met a PDS fault and were retried", str(retried), "", None)
    row(
        "scheduled: run time vs a raw createRecord loop",
        f"{seconds:.1f} vs {raw_seconds:.1f} s ({seconds / raw_seconds:.2f})",
        "",
        None,
    )
