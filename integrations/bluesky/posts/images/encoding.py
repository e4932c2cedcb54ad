"""Re-encoding: an image decoded once, turned upright, resized and encoded again at the highest quality that fits
(PNG for a lossless source when it fits, else WebP with transparency or JPEG), with none of the source's
metadata."""

import io
from collections.abc import Callable

from PIL import Image

from integrations.bluesky.posts.images.checks import converted_mode, decode
from integrations.bluesky.posts.images.formats import JPEG, PNG, WEBP, ImageTooLarge, PreparedImage
from integrations.bluesky.posts.images.metadata import TRANSPOSE

_QUALITY_MAX = 95  # above 95 libjpeg's files grow fast for nothing a viewer can see
_QUALITY_MIN = 50


def fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled down (never up) so that its long side is at most `max_side`."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def reencode(
    image: Image.Image,
    mime: str,
    orientation: int,
    *,
    source: bytes,
    lossy_source: bool,
    max_bytes: int,
    max_side: int,
) -> PreparedImage:
    """`image` (opened from `source`, not decoded yet) decoded, turned by its EXIF `orientation`, fitted in
    `max_side` and encoded in at most `max_bytes`."""
    target = fit(image.size, max_side)
    icc_profile = image.info.get("icc_profile")
    decode(image, mime, source, target)
    if image.mode == "CMYK":
        icc_profile = None  # a CMYK profile would misdescribe the RGB pixels
    image = _upright(image, target, orientation)
    width, height = image.size
    if not lossy_source:
        # A screenshot or a drawing keeps its sharp edges in PNG if that fits.
        data = encode(image, "PNG", icc_profile, limit=max_bytes)
        if data is not None:
            return PreparedImage(data, PNG, width, height, reencoded=True)
    # Transparency needs WebP (JPEG has none); everything opaque goes to JPEG, which every viewer reads.
    pil_format, out_mime = ("WEBP", WEBP) if image.mode in ("RGBA", "LA") else ("JPEG", JPEG)
    if pil_format == "WEBP" and image.mode == "LA":
        image = image.convert("RGBA")
    data = highest_quality(
        lambda quality, limit: encode(image, pil_format, icc_profile, quality, limit=limit), max_bytes
    )
    return PreparedImage(data, out_mime, width, height, reencoded=True)


def _upright(image: Image.Image, target: tuple[int, int], orientation: int) -> Image.Image:
    """The decoded image in a mode that resizes and encodes, at `target`, turned upright, without an alpha channel
    that is opaque everywhere and without the source's metadata."""
    converted = converted_mode(image.mode, has_alpha="A" in image.mode or "transparency" in image.info)
    if converted != image.mode:
        image = image.convert(converted)
    if image.size != target:
        image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if orientation in TRANSPOSE:
        image = image.transpose(TRANSPOSE[orientation])
    if image.mode == "CMYK":
        image = image.convert("RGB")
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert(image.mode[:-1])  # an opaque alpha channel: JPEG can carry it
    image.info = {}  # nothing of the source's metadata may reach an encoder
    return image


class _Full(Exception):
    pass


class _LimitedBuffer(io.BytesIO):
    """Stops an encoder (PNG and JPEG write as they go) as soon as its output passes the limit."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data, /) -> int:  # type: ignore[override]
        if self.limit is not None and self.tell() + len(data) > self.limit:
            raise _Full
        return super().write(data)


def encode(
    image: Image.Image,
    pil_format: str,
    icc_profile: bytes | None,
    quality: int | None = None,
    *,
    limit: int | None = None,
) -> bytes | None:
    """The encoded image, or None when it passes `limit` bytes (the encoder is stopped there)."""
    options: dict[str, object] = {"icc_profile": icc_profile} if icc_profile else {}
    if pil_format == "JPEG":
        options |= {"quality": quality, "optimize": True}
    elif pil_format == "WEBP":
        options |= {"quality": quality, "method": 2}  # method 4 (Pillow's default) is twice as slow for 1% smaller
    buffer = _LimitedBuffer(limit)
    try:
        image.save(buffer, pil_format, **options)
    except _Full:
        return None
    return buffer.getvalue()


def highest_quality(encode: Callable[[int, int], bytes | None], max_bytes: int) -> bytes:
    """The encoding at the highest quality from 95 down to 50 that fits, by binary search (most photos fit at 95:
    one encoding). `encode(quality, limit)` returns None for an encoding over `limit` bytes."""
    data = encode(_QUALITY_MAX, max_bytes)
    if data is not None:
        return data
    best = None
    low, high = _QUALITY_MIN, _QUALITY_MAX - 1
    while low <= high:
        quality = (low + high) // 2
        data = encode(quality, max_bytes)
        if data is not None:
            best, low = data, quality + 1
        else:
            high = quality - 1
    if best is None:
        raise ImageTooLarge(
            f"The image does not fit in {max_bytes:,} bytes even at low quality; try a smaller or simpler image."
        )
    return best
