"""Outbound guard benchmarks: a 1 MB page through `outbound.get` vs a bare httpx GET from the same server, and the
peak memory of reading compressed-page attacks.

Needs no PDS and no database: `python -m bench guard` runs only these. The pages come from a stdlib HTTP server in
a separate process on loopback (so its work does not share this process's interpreter lock); the guard runs as the
test suite runs it (`outbound.loopback_only_for_tests`: URLs users name may reach loopback, and only that). Memory
is measured in a fresh process from its own peak resident size (Linux VmHWM, reset once the client is warm).
"""

import contextlib
import gzip
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Row = Callable[[str, str, str, bool | None], None]
ROOT = Path(__file__).resolve().parent.parent
PAGE = b"<!doctype html><title>A large page</title>" + b"<p>" + b"lorem ipsum dolor sit amet " * 37_000 + b"</p>"
PAGE = PAGE[:1_000_000]  # exactly the link-card cap: read whole, not refused


def zeros(wbits: int, size: int = 1_000_000_000) -> bytes:
    """`size` zero bytes compressed (wbits 31: gzip, 15: zlib's deflate), made a megabyte at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = bytes(1_000_000)
    return b"".join(compressor.compress(chunk) for _ in range(size // len(chunk))) + compressor.flush()


ATTACKS = {
    # path: (what it is, Content-Encoding, body)
    "/gzip-bomb": ("gzip, 1 GB of zeros in 1 MB", "gzip", lambda: zeros(31)),
    "/deflate-bomb": ("deflate, 1 GB of zeros in 1 MB", "deflate", lambda: zeros(15)),
    "/gzip-gzip": ("gzip, gzip: 1 GB of zeros in 3 KB", "gzip, gzip", lambda: gzip.compress(zeros(31), 9)),
}


def serve() -> None:
    """In the server process: answer the page and the attacks, print the port, serve until stdin closes."""
    bodies = {"/page": ("", PAGE)} | {path: (coding, make()) for path, (_, coding, make) in ATTACKS.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def do_GET(self) -> None:
            coding, body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if coding:
                self.send_header("Content-Encoding", coding)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client stopped reading (a body over its cap)
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that hung up on an attack is what the attack is about

    server = Server(("127.0.0.1", 0), Handler)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes it


@contextmanager
def pages() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.guard", "--serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        process.wait(timeout=10)


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()


def bench_speed(row: Row, url: str, runs: int) -> None:
    import httpx

    from integrations.security import outbound

    print("a 1 MB page: through the guard vs a bare httpx GET", flush=True)
    guarded, bare = [], []
    with outbound.loopback_only_for_tests(), httpx.Client() as client:
        for _ in range(5):  # warm both: connections in their pools
            client.get(f"{url}/page")
            outbound.get(f"{url}/page")
        for index in range(runs):  # interleaved, each first in turn: drift and order hit both alike
            for which in ("guarded", "bare") if index % 2 else ("bare", "guarded"):
                started = time.perf_counter()
                if which == "guarded":
                    ours = outbound.get(f"{url}/page")
                    guarded.append(time.perf_counter() - started)
                else:
                    theirs = client.get(f"{url}/page")
                    bare.append(time.perf_counter() - started)
    assert ours.content == theirs.content == PAGE
    ratio = statistics.median(guarded) / statistics.median(bare)
    row(
        f"1 MB page: `outbound.get` vs bare `httpx` GET, same server (median of {runs})",
        f"{statistics.median(guarded) * 1000:.2f} vs {statistics.median(bare) * 1000:.2f} ms",
        "",
        None,
    )
    row("1 MB page: guard / bare ratio", f"{ratio:.2f}", "≤ 1.2", ratio <= 1.2)


def bench_memory(row: Row, url: str) -> None:
    print("peak memory reading compressed-page attacks", flush=True)
    for path, (what, _, _) in ATTACKS.items():
        result = subprocess.run(
            [sys.executable, "-m", "bench.guard", "--memory", f"{url}{path}"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        words = result.stdout.split()
        peak_mb, outcome = float(words[-1]), words[-2]
        row(
            f"compressed-page attack ({what}): peak RSS above the warm baseline",
            f"{peak_mb:.2f} MB ({outcome})",
            "≤ 2 MB",
            peak_mb <= 2,
        )


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM (Linux only)")


def measure_memory(url: str) -> None:
    """In the child process: warm the client on the page, reset the peak, read the attack; print the peak above."""
    _django()
    from integrations.security import bodies, outbound

    with outbound.loopback_only_for_tests():
        page = url.rsplit("/", 1)[0] + "/page"
        for _ in range(3):
            outbound.get(page)  # the client, its pool, a 1 MB body read and freed: all part of the baseline
        Path("/proc/self/clear_refs").write_text("5")  # the peak so far becomes the baseline
        baseline = _peak_rss_kib()
        try:
            outbound.get(url)
            outcome = "read"
        except bodies.ResponseTooLarge:
            outcome = "refused-at-1MB"
        except bodies.UnsupportedEncoding:
            outcome = "refused-unread"
    print(f"{outcome} {(_peak_rss_kib() - baseline) / 1024:.2f}")


def run(row: Row, *, quick: bool) -> None:
    """Every guard benchmark, reported through `row`."""
    with pages() as url:
        _django()
        bench_speed(row, url, 30 if quick else 200)
        bench_memory(row, url)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve()
elif __name__ == "__main__" and sys.argv[1:2] == ["--memory"]:
    measure_memory(sys.argv[2])
