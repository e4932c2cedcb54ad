"""Publishing benchmarks (`python -m bench publish`): against the local reference PDS.

- A text post through the service layer (accept → plan → claim → applyWrites → stored) vs a raw `createRecord`
  with the same token: ratio, target ≤ 1.15.
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

from integrations.bluesky import publishing
from integrations.bluesky.client import PdsClient
from integrations.models import Channel, Post
from tests.faultproxy import FaultProxy

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
        post = publishing.accept(channel.user, channel, [publishing.PartRequest(text=f"service {index}")])
        assert publishing.publish(post.pk, claimed=post).post.status == Post.Status.PUBLISHED

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
    ratio = statistics.median(service) / statistics.median(raw)
    row(f"text post, raw createRecord (median of {posts})", f"{statistics.median(raw) * 1000:.1f} ms", "", None)
    row(
        f"text post through the service layer (median of {posts})",
        f"{statistics.median(service) * 1000:.1f} ms",
        "",
        None,
    )
    row("publishing overhead ratio", f"{ratio:.3f}", "≤ 1.15", ratio <= 1.15)


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
                media = publishing.store_media(channel.user, SimpleUploadedFile("p.png", image))
                parts = [
                    publishing.PartRequest(
                        text=f"thread {index} part {n}",
                        images=(publishing.ImageRequest(media.pk, "noise"),) if n == 0 else (),
                    )
                    for n in range(3)
                ]
            else:
                parts = [publishing.PartRequest(text=f"post {index}")]
            post = None
            while post is None:  # accepting reads references/handles too: it may meet the faults as well
                try:
                    post = publishing.accept(channel.user, channel, parts)
                except Exception:
                    attempts["accept retried"] += 1
            planned += len(parts)
            outcome = publishing.publish(post.pk, claimed=post)
            tries = 1
            while outcome.post.status != Post.Status.PUBLISHED and tries < 20:
                outcome = publishing.publish(post.pk, retry=True)  # no backoff wait in a benchmark
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
