"""Image pipeline benchmarks: speed against bare Pillow, bytes of an in-limit photo, peak memory of a 4-image post.

Needs no PDS and no database: `python -m bench images` runs only these. The photos are made here (noise over
gradients, so they compress like photos) with the metadata a camera writes.
"""

import io
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageCms

from integrations.bluesky.posts import images
from integrations.bluesky.posts.images import checks

Row = Callable[[str, str, str, bool | None], None]
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def photo(width: int, height: int, noise: float) -> Image.Image:
    grain = Image.effect_noise((width, height), noise).convert("L")
    ramp = Image.linear_gradient("L").resize((width, height))
    red = Image.blend(grain, ramp, 0.6)
    green = Image.blend(
        grain.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ramp.transpose(Image.Transpose.ROTATE_180), 0.5
    )
    return Image.merge("RGB", (red, green, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    exif[0x0110] = "Model 12"
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.5), "E", (2.0, 17.0, 40.2)
    return exif


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def bare_pillow(source: bytes, size: tuple[int, int]) -> bytes:
    """What a plain pipeline does: open, resize, save."""
    image = Image.open(io.BytesIO(source))
    image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def bench_speed(row: Row, runs: int) -> None:
    print("image pipeline on a 12-megapixel camera JPEG", flush=True)
    source = jpeg(photo(4000, 3000, noise=40), quality=92, exif=camera_exif(), icc_profile=ICC, xmp=XMP)
    prepared = images.prepare(source)
    ours, bare = [], []
    for _ in range(runs):  # interleaved, so drift in the machine's speed hits both alike
        started = time.perf_counter()
        images.prepare(source)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        bare_pillow(source, (prepared.width, prepared.height))
        bare.append(time.perf_counter() - started)
    ratio = statistics.median(ours) / statistics.median(bare)
    row(
        f"12 MP JPEG ({len(source) / 1e6:.1f} MB): prepare (median of {runs})",
        f"{statistics.median(ours) * 1000:.0f} ms → {prepared.width}x{prepared.height}, {len(prepared.data):,} B",
        f"≤ {images.POST_IMAGE_MAX_BYTES:,} B",
        len(prepared.data) <= images.POST_IMAGE_MAX_BYTES,
    )
    row(
        f"12 MP JPEG: bare Pillow open → resize → save (median of {runs})",
        f"{statistics.median(bare) * 1000:.0f} ms",
        "",
        None,
    )
    row("12 MP JPEG: prepare / bare Pillow", f"{ratio:.2f}", "≤ 1.5", ratio <= 1.5)


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def bench_in_limit(row: Row) -> None:
    print("an image already within the limits", flush=True)
    bare = jpeg(photo(1600, 1200, noise=20), quality=90, icc_profile=ICC)
    metadata = segment(0xE1, b"Exif\x00\x00" + camera_exif().tobytes()) + segment(
        0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP
    )
    source = bare[:2] + metadata + bare[2:]
    prepared = images.prepare(source)
    identical = prepared.data == bare and not prepared.reencoded
    row(
        "in-limit JPEG: bytes sent vs file minus metadata",
        f"{'identical' if identical else 'DIFFERENT'} ({len(source):,} - {len(metadata):,} = {len(prepared.data):,} B)",
        "identical",
        identical,
    )


def bench_memory(row: Row) -> None:
    print("peak memory preparing a 4-image post from 20 MB photos", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        image = photo(6000, 4000, noise=80)
        for index in range(images.MAX_IMAGES_PER_POST):
            exif = camera_exif()
            exif[0x010E] = f"photo {index}"
            path = Path(folder) / f"photo{index}.jpg"
            path.write_bytes(jpeg(image, quality=95, exif=exif, icc_profile=ICC))
            paths.append(path)
        del image
        sizes = [path.stat().st_size for path in paths]
        # A fresh process: this one's peak already holds the photos made above.
        result = subprocess.run(
            [sys.executable, "-m", "bench.images", "--memory", *map(str, paths)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    peak_mb = float(result.stdout.split()[-1])
    row(
        f"4-image post from {max(sizes) / 1e6:.0f} MB photos (6000x4000): peak RSS above baseline",
        f"{peak_mb:.0f} MB",
        "≤ 150 MB",
        peak_mb <= 150,
    )


def _png(width: int, height: int, depth: int, colour: int) -> bytes:
    """A PNG of one flat colour, compressed row by row: a few hundred KB whatever its pixel count."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\x00" * (1 + -(-width * channels * depth // 8))
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


HOSTILE = [
    ("7000x7000 PNG, 16-bit RGBA", (7000, 7000, 16, 6)),
    ("7000x7000 PNG, 8-bit RGB", (7000, 7000, 8, 2)),
    ("5120x2880 PNG, RGBA (a 5K screenshot)", (5120, 2880, 8, 6)),
    ("7000x7000 PNG, grey", (7000, 7000, 8, 0)),
]


def bench_hostile_memory(row: Row) -> None:
    """Peak memory of small files that decode to many pixels: refused before decoding when preparing them would
    need more than MAX_DECODED_BYTES, and within that bound when accepted."""
    print("peak memory of small PNGs with many pixels", flush=True)
    bound = checks.MAX_DECODED_BYTES / 2**20
    with tempfile.TemporaryDirectory() as folder:
        for name, shape in HOSTILE:
            path = Path(folder) / "hostile.png"
            path.write_bytes(_png(*shape))
            size = path.stat().st_size
            result = subprocess.run(
                [sys.executable, "-m", "bench.images", "--memory-any", str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
            outcome, peak_mb = result.stdout.split()[-2], float(result.stdout.split()[-1])
            row(
                f"{name} ({size / 1000:.0f} KB): {outcome}, peak RSS above baseline",
                f"{peak_mb:.0f} MB",
                f"≤ {bound:.0f} MiB",
                peak_mb * 1e6 <= checks.MAX_DECODED_BYTES * 1.1,
            )


def _peak_rss_kib() -> int:
    """The process's peak resident memory so far. Linux's VmHWM is this process's own; ru_maxrss would carry the
    parent's peak across fork and exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_memory(paths: list[str]) -> None:
    """In the child process: prepare each photo in turn, keeping the results as a post would; print the peak."""
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")  # the peak so far (imports) becomes the baseline
    baseline = _peak_rss_kib()
    kept = []
    for path in paths:
        kept.append(images.prepare(Path(path).read_bytes()))
    assert all(len(image.data) <= images.POST_IMAGE_MAX_BYTES for image in kept)
    print(f"peak_mb {(_peak_rss_kib() - baseline) / 1024:.1f}")


def measure_any(path: str) -> None:
    """In the child process: prepare one file, accepted or refused; print which and the peak."""
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")
    baseline = _peak_rss_kib()
    try:
        images.prepare(Path(path).read_bytes())
        outcome = "accepted"
    except images.ImageTooLarge:
        outcome = "refused"
    print(f"{outcome} {(_peak_rss_kib() - baseline) / 1024:.1f}")


def run(row: Row, *, quick: bool) -> None:
    """Every image benchmark, reported through `row`."""
    bench_speed(row, 5 if quick else 15)
    bench_in_limit(row)
    bench_memory(row)
    bench_hostile_memory(row)


if __name__ == "__main__" and sys.argv[1:2] == ["--memory"]:
    measure_memory(sys.argv[2:])
if __name__ == "__main__" and sys.argv[1:2] == ["--memory-any"]:
    measure_any(sys.argv[2])
