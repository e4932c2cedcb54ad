"""Benchmarks: `make bench` (or `python -m bench [--quick] [pds] [publish] [images] [guard]`). Prints a table.

`pds` and `publish` (bench/publishing.py) run against the local reference PDS on a scratch database (SQLite in the
temp dir unless BENCH_DATABASE_URL names another, e.g. PostgreSQL); `images` (bench/images.py) and `guard`
(bench/guard.py) need neither. No section named: all of them.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.gettempdir()) / f"skyport-bench-{os.getpid()}.sqlite3"
os.environ["TEST_DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{SCRATCH}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ["CACHE_URL"] = f"filecache://{tempfile.gettempdir()}/skyport-bench-cache-{os.getpid()}"

import django  # noqa: E402

django.setup()

import logging  # noqa: E402

logging.getLogger("integrations").setLevel(logging.WARNING)  # a line per post would drown the table

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench import guard as guard_benchmarks  # noqa: E402
from bench import images as image_benchmarks  # noqa: E402
from bench import publishing as publishing_benchmarks  # noqa: E402
from integrations.bluesky import services  # noqa: E402
from integrations.bluesky.accounts import door, keepalive  # noqa: E402
from integrations.bluesky.xrpc.client import PdsClient  # noqa: E402
from integrations.models import Channel  # noqa: E402
from tests.support.localidentity import identities_on  # noqa: E402
from tests.support.pds.server import LocalPds  # noqa: E402

User = get_user_model()
rows: list[tuple[str, str, str, str]] = []


def row(name: str, value: str, target: str, verdict: bool | None) -> None:
    rows.append((name, value, target, "—" if verdict is None else ("ok" if verdict else "MISSED")))
    print(f"  {name}: {value}", flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def new_user(name: str):
    return User.objects.create_user(name, password="bench-password-123")


def connected_channels(pds: LocalPds, count: int, prefix: str, per_account: int = 50) -> list[Channel]:
    """`count` channels with their own sessions: several users connect each account (cheap to set up)."""
    accounts = []
    for _ in range(0, count, per_account):
        account = pds.create_account()
        pds.create_app_password(account)
        accounts.append(account)
    users = [new_user(f"{prefix}-{index}") for index in range(count)]

    def connect(index: int) -> Channel:
        account = accounts[index // per_account]
        try:
            return services.connect(users[index], account.handle, account.app_passwords[0])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:  # the PDS checks each app password with scrypt: use its threads
        return list(pool.map(connect, range(count)))


def bench_overhead(pds: LocalPds, calls: int) -> None:
    print("lifecycle overhead", flush=True)
    channel = connected_channels(pds, 1, "overhead")[0]
    token = channel.access_jwt
    raw_client = PdsClient(pds.url)
    raw, wrapped = [], []
    for _ in range(20):  # warm up both paths
        raw_client.get_session(token)
        door.call(channel, lambda client, access: client.get_session(access))
    for _ in range(calls):  # interleaved, so drift in the PDS's speed hits both alike
        started = time.perf_counter()
        raw_client.get_session(token)
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        door.call(channel, lambda client, access: client.get_session(access))
        wrapped.append(time.perf_counter() - started)
    ratio = statistics.median(wrapped) / statistics.median(raw)
    row(f"getSession, raw call (median of {calls})", f"{statistics.median(raw) * 1000:.2f} ms", "", None)
    row(
        f"getSession through door.call, the session door (median of {calls})",
        f"{statistics.median(wrapped) * 1000:.2f} ms",
        "",
        None,
    )
    row("lifecycle overhead ratio", f"{ratio:.3f}", "≤ 1.10", ratio <= 1.10)


def bench_thundering_herd(pds: LocalPds, callers: int) -> None:
    print(f"{callers} concurrent callers on an expired access token", flush=True)
    channel = connected_channels(pds, 1, "herd")[0]
    Channel.objects.filter(pk=channel.pk).update(access_expires_at=timezone.now() - timedelta(minutes=1))
    before = pds.refresh_count(channel.did)
    latencies: list[float] = []
    failures: list[Exception] = []
    barrier = threading.Barrier(callers)

    def caller() -> None:
        own = Channel.objects.get(pk=channel.pk)
        barrier.wait()
        started = time.perf_counter()
        try:
            door.call(own, lambda client, access: client.get_session(access))
            latencies.append(time.perf_counter() - started)
        except Exception as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refreshes = pds.refresh_count(channel.did) - before
    row(f"{callers} callers: refreshSession calls", str(refreshes), "1", refreshes == 1)
    row(f"{callers} callers: failed calls", str(len(failures)), "0", not failures)
    row(
        f"{callers} callers: latency p50 / p95",
        f"{percentile(latencies, 0.5) * 1000:.0f} / {percentile(latencies, 0.95) * 1000:.0f} ms",
        "",
        None,
    )


def bench_sweep(pds: LocalPds, sizes: list[int]) -> None:
    per_channel = {}
    for size in sizes:
        print(f"keep-alive sweep over {size} channels (setting up)", flush=True)
        Channel.objects.all().delete()
        channels = connected_channels(pds, size, f"sweep{size}")
        Channel.objects.filter(pk__in=[c.pk for c in channels]).update(refreshed_at=timezone.now() - timedelta(days=10))
        dids = {c.did for c in channels}
        before = sum(pds.refresh_count(did) for did in dids)
        result = keepalive.sweep()
        refreshes = sum(pds.refresh_count(did) for did in dids) - before
        per_channel[size] = result.seconds / size
        row(
            f"sweep {size} channels: wall time",
            f"{result.seconds:.2f} s ({per_channel[size] * 1000:.1f} ms/channel)",
            "linear",
            None,
        )
        row(f"sweep {size} channels: refreshSession calls", str(refreshes), str(size), refreshes == size)
    if len(sizes) > 1:
        growth = per_channel[sizes[-1]] / per_channel[sizes[0]]
        row(f"sweep cost per channel, {sizes[-1]} vs {sizes[0]}", f"{growth:.2f} x", "≈ 1 (≤ 1.5)", growth <= 1.5)


def bench_list_queries(pds: LocalPds, sizes: list[int]) -> None:
    print("channel list queries", flush=True)
    owner = new_user("lister")
    template = connected_channels(pds, 1, "template")[0]
    Channel.objects.filter(user=owner).delete()
    created = 0
    counts: dict[str, dict[int, int]] = {"page": {}, "api": {}}
    client = Client()
    client.force_login(owner)
    for size in sizes:
        Channel.objects.bulk_create(
            Channel(
                user=owner,
                did=f"did:plc:bench{index:06d}",
                handle=f"bench{index}.test",
                service_url=template.service_url,
                access_jwt=template.access_jwt,
                refresh_jwt=template.refresh_jwt,
                refresh_expires_at=template.refresh_expires_at,
            )
            for index in range(created, size)
        )
        created = size
        for name, url in (("page", "/app/channels"), ("api", "/api/v1/channels/")):
            client.get(url)  # warm: the options cache is filled once per process, not per request
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            assert response.status_code == 200, response.status_code
            counts[name][size] = len(queries)
    for name, label in (("page", "/app/channels"), ("api", "GET /api/v1/channels/")):
        values = " / ".join(f"{counts[name][s]} ({s} ch.)" for s in sizes)
        constant = len(set(counts[name].values())) == 1
        row(f"{label}: DB queries", values, "constant", constant)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("sections", nargs="*", metavar="section", help="pds, publish, images, guard (default: all)")
    args = parser.parse_args()
    known = {"pds", "publish", "images", "guard"}
    sections = set(args.sections) or known
    if sections - known:
        parser.error(f"unknown section: {', '.join(sorted(sections - known))}")
    if sections & {"pds", "publish"}:
        bench_pds(quick=args.quick, sections=sections)
    if "images" in sections:
        image_benchmarks.run(row, quick=args.quick)
    if "guard" in sections:
        guard_benchmarks.run(row, quick=args.quick)
    header = ("benchmark", "result", "target", "verdict")
    width = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    print()
    print("| " + " | ".join(h.ljust(width[i]) for i, h in enumerate(header)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in width) + "|")
    for r in rows:
        print("| " + " | ".join(v.ljust(width[i]) for i, v in enumerate(r)) + " |")
    sys.exit(0 if all(r[3] != "MISSED" for r in rows) else 1)


def bench_pds(*, quick: bool, sections: set[str]) -> None:
    setup_test_environment()  # the test client's host name is allowed
    # Setting up 1,000 channels is 1,000 connects from one address: lift the connect throttle for the bench.
    from integrations.security.throttling import DEFAULT_RATES

    settings.INTEGRATIONS_CONNECT_RATES = {scope: (10**9, window) for scope, (_, window) in DEFAULT_RATES.items()}
    from integrations.bluesky.posts.accept import DEFAULT_POST_RATES  # ... and 1,000 posts from one user

    settings.INTEGRATIONS_POST_RATES = {scope: (10**9, window) for scope, (_, window) in DEFAULT_POST_RATES.items()}
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)  # a scratch database: start empty
    pds = LocalPds()
    settings.INTEGRATIONS_BLUESKY_SERVICE_URL = pds.url
    try:
        with identities_on(pds):  # connects and refreshes read DID documents and check handles, as in production
            print(f"local PDS at {pds.url}; database {connection.vendor}", flush=True)
            if "pds" in sections:
                bench_overhead(pds, 100 if quick else 500)
                bench_thundering_herd(pds, 50)
                bench_sweep(pds, [20, 100] if quick else [100, 1000])
                bench_list_queries(pds, [10, 100] if quick else [10, 1000])
            if "publish" in sections:
                publishing_benchmarks.bench_text_post(
                    pds, connected_channels(pds, 1, "poster")[0], row, 40 if quick else 200
                )
                publishing_benchmarks.bench_fault_run(
                    pds, connected_channels(pds, 1, "faults")[0], row, 60 if quick else 300
                )
                many = connected_channels(pds, 10 if quick else 50, "scheduled", per_account=1)
                publishing_benchmarks.bench_scheduled(pds, many, row, 100 if quick else 1000)
    finally:
        pds.stop()
        connections.close_all()
        if connection.vendor == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{SCRATCH}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
