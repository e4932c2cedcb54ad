"""Images for posts (and link-card thumbnails): recognised by content, stripped of metadata, sized for Bluesky.

`prepare()` turns an uploaded file into the bytes to send as a blob: JPEG, PNG, WebP and GIF are recognised by their
first bytes (never the file name or Content-Type); anything else is `unsupported_image`. An image within the byte
limit and at most `max_side` pixels on its long side is sent as it is, minus its metadata: the marker segments or
chunks that carry EXIF (GPS included), XMP, IPTC and comments are cut out byte by byte, so the pixels are not
re-encoded and lose nothing. Anything else (larger, an EXIF orientation to apply, a GIF or another animation, of which
Bluesky shows only a still) is decoded once, turned upright, resized and re-encoded at the highest quality that fits.

Pure functions on bytes: storing uploads and sending blobs is the caller's business.
"""

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

from integrations.conf import app_settings
from integrations.exceptions import IntegrationError

# The lexicon's maxSize for app.bsky.embed.images#image (raised from 1,000,000 in 2026).
POST_IMAGE_MAX_BYTES = 2_000_000
# The lexicon's maxSize for app.bsky.embed.external#external.thumb.
THUMB_MAX_BYTES = 1_000_000
MAX_SIDE = 2000
MAX_IMAGES_PER_POST = 4
# Bluesky's app caps alt text at 2,000 (its MAX_ALT_TEXT); the lexicon sets no limit, so we count characters.
MAX_ALT_TEXT = 2000
# What we accept from a user before looking inside: a camera JPEG is 5-25 MB, a phone's 50 MP shot about 30 MB.
MAX_SOURCE_BYTES = 50_000_000
# Below Pillow's MAX_IMAGE_PIXELS (89 MP), so a refusal here comes before Pillow's own warning; 50 MP is a large
# phone or camera sensor.
MAX_PIXELS = 50_000_000
# What preparing an image may cost in memory, whatever the file's size: the pixels as Pillow holds them (bytes per
# pixel of the mode the file decodes to), their conversion when the mode cannot be resized or encoded as it is, the
# premultiplied copy Pillow resizes an image with transparency in, and the resize's intermediate image. A 190 KB PNG of
# 49 MP at 16 bits per channel would need ~400 MB; a JPEG is decoded at a reduced scale (1/2 to 1/8), so a 50 MP photo
# needs ~50 MB. 160 MiB holds a 24 MP RGB image, a 5K screenshot with transparency or a 50 MP grey one.
MAX_DECODED_BYTES = 160 * 2**20
# Bytes per pixel in Pillow's memory (Imaging.h): 1 for 1, L and P, 2 for the 16-bit modes, 4 for everything else
# (RGB is stored as 4 bytes like RGBA).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
GIF = "image/gif"
_PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP", GIF: "GIF"}
_QUALITY_MAX = 95  # above 95 libjpeg's files grow fast for nothing a viewer can see
_QUALITY_MIN = 50
# The same table as PIL.ImageOps.exif_transpose: applied to the resized image, it turns far fewer pixels.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112


class ImageError(IntegrationError):
    """Base class of the refusals of an image or its alt text."""

    code = "image_error"


class UnsupportedImage(ImageError):
    """The file is not a JPEG, PNG, WebP or GIF, or it cannot be read as one."""

    code = "unsupported_image"


class ImageTooLarge(ImageError):
    """The file, its pixel count, or even its most compressed re-encoding is over a limit."""

    code = "image_too_large"


class AnimatedImage(ImageError):
    """An animated image (GIF, PNG or WebP) where a still was wanted: Bluesky shows images still, and video is not
    supported yet, so its author chooses: post the first frame, or another image."""

    code = "animated_image"


class TooManyImages(ImageError):
    code = "too_many_images"


class AltTextRequired(ImageError):
    code = "alt_text_required"


class AltTextTooLong(ImageError):
    code = "alt_text_too_long"


@dataclass(frozen=True)
class PreparedImage:
    """The bytes to upload as a blob, their MIME type, the pixel size sent and whether the pixels were re-encoded."""

    data: bytes
    mime: str
    width: int
    height: int
    reencoded: bool

    @property
    def aspect_ratio(self) -> dict[str, int]:
        """The embed's `aspectRatio` (app.bsky.embed.defs#aspectRatio), from the pixels sent."""
        return {"width": self.width, "height": self.height}


def sniff(data: bytes) -> str | None:
    """The MIME type of a JPEG, PNG, WebP or GIF file from its first bytes, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    return None


def prepare(
    data: bytes | IO[bytes],
    *,
    max_bytes: int = POST_IMAGE_MAX_BYTES,
    max_side: int = MAX_SIDE,
    first_frame: bool = True,
) -> PreparedImage:
    """The image to send for `data` (bytes or a binary file, read from its current position).

    Raises `UnsupportedImage` for anything but a readable JPEG, PNG, WebP or GIF, and `ImageTooLarge` for a file over
    `MAX_SOURCE_BYTES`, an image over `MAX_PIXELS` (a decompression bomb) or one that fits `max_bytes` at no quality
    we accept. `max_bytes` is the post image's limit by default; a link card's thumbnail passes `THUMB_MAX_BYTES`.
    An animation becomes its first frame, or with `first_frame=False` is refused with `AnimatedImage` (a user's
    upload: they choose).
    """
    source = _read(data)
    mime = sniff(source)
    if mime is None:
        raise UnsupportedImage("Only JPEG, PNG, WebP and GIF images can be posted.")
    image = _open(source, mime)
    width, height = image.size
    animated = mime != JPEG and bool(getattr(image, "is_animated", False))
    if animated and not first_frame:
        raise AnimatedImage("The image is animated, and animations cannot be posted yet.")
    # Bluesky shows a still of an animation, so we choose which: the first frame, as the user sees it first.
    still = mime == GIF or animated
    orientation = 1
    if not still:
        stripped, exif = _STRIP[mime](source)
        orientation = _orientation(exif)
        if orientation == 1 and max(width, height) <= max_side and len(stripped) <= max_bytes:
            _check_complete(stripped, mime)
            return PreparedImage(stripped, mime, width, height, reencoded=False)
        del stripped
    lossy_source = mime == JPEG or (mime == WEBP and _webp_is_lossy(source))
    return _reencode(
        image, mime, orientation, source=source, lossy_source=lossy_source, max_bytes=max_bytes, max_side=max_side
    )


def check_alt(alt: str | None, required: bool | None = None) -> str:
    """The alt text to send (trimmed), or `AltTextTooLong` / `AltTextRequired` (`required` defaults to the setting
    `INTEGRATIONS_POST_ALT_TEXT_REQUIRED`)."""
    alt = (alt or "").strip()
    if required is None:
        required = app_settings.POST_ALT_TEXT_REQUIRED
    if required and not alt:
        raise AltTextRequired("Every image needs alt text: a short description for people who cannot see it.")
    if len(alt) > MAX_ALT_TEXT:
        raise AltTextTooLong(f"Alt text can be at most {MAX_ALT_TEXT:,} characters; this one has {len(alt):,}.")
    return alt


def check_image_count(count: int) -> None:
    """`TooManyImages` when a post would carry more images than the lexicon allows."""
    if count > MAX_IMAGES_PER_POST:
        raise TooManyImages(f"A post can carry at most {MAX_IMAGES_PER_POST} images; this one has {count}.")


# --- reading ----------------------------------------------------------------------------------------------------
def _read(data: bytes | IO[bytes]) -> bytes:
    source = data if isinstance(data, bytes | bytearray | memoryview) else data.read(MAX_SOURCE_BYTES + 1)
    if len(source) > MAX_SOURCE_BYTES:
        raise ImageTooLarge(f"The file is over {MAX_SOURCE_BYTES // 1_000_000} MB, the most we accept.")
    return bytes(source)


def _open(source: bytes, mime: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(source), formats=[_PIL_FORMAT[mime]])
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels() from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _damaged() from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(width, height)
    if width < 1 or height < 1:
        raise UnsupportedImage("The image has no pixels.")
    return image


def _too_many_pixels(width: int = 0, height: int = 0) -> ImageTooLarge:
    size = f"{width:,} by {height:,} pixels" if width else "too many pixels"
    return ImageTooLarge(f"The image is {size}; at most {MAX_PIXELS // 1_000_000} megapixels are accepted.")


def _orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    parsed = Image.Exif()
    try:
        parsed.load(exif)
        value = parsed.get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block is dropped anyway; it cannot turn the picture
        return 1
    return value if value in _TRANSPOSE else 1


def _check_complete(data: bytes, mime: str) -> None:
    """A file sent untouched is decoded in full first (a JPEG at 1/8 scale: every byte of it is still read), so a
    damaged one (cut short, rows missing, a bad checksum) is refused here rather than shown broken on Bluesky."""
    if mime == PNG:
        _check_png_rows(data)
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[mime]]) as image:
            image.verify()  # a PNG's chunk checksums
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[mime]]) as image:
            if mime == JPEG:
                image.draft(None, (1, 1))
            image.load()
    except Exception as exc:
        raise _damaged() from exc


def _damaged() -> UnsupportedImage:
    return UnsupportedImage("The image could not be read; it may be damaged.")


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _check_png_rows(data: bytes) -> None:
    """Refuse a PNG whose image data ends before its last row. Pillow accepts a compressed stream that ends early
    but cleanly (the missing rows stay blank), so the rows are counted here: the data is decompressed piece by
    piece, never held whole, and the count stops as soon as every row is there."""
    header, streams, pos = None, [], 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4]), data[pos + 4 : pos + 8]
        if kind == b"IHDR" and length >= 13:
            header = data[pos + 8 : pos + 21]
        elif kind == b"IDAT":
            streams.append(memoryview(data)[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or header[9] not in _PNG_CHANNELS:
        raise _damaged()
    width, height = int.from_bytes(header[0:4]), int.from_bytes(header[4:8])
    bits = header[8] * _PNG_CHANNELS[header[9]]
    passes = _ADAM7 if header[12] == 1 else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        columns, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and rows > 0:
            expected += rows * (1 + -(-columns * bits // 8))  # each row: its filter byte and its samples
    inflater, produced = zlib.decompressobj(), 0
    try:
        for stream in streams:
            pending = bytes(stream)
            while pending:
                produced += len(inflater.decompress(pending, 1 << 16))
                if produced >= expected:
                    return
                pending = inflater.unconsumed_tail
        produced += len(inflater.flush())
    except zlib.error as exc:
        raise _damaged() from exc
    if produced < expected:
        raise UnsupportedImage(
            f"The image is damaged: its data ends after {produced * 100 // max(expected, 1)}% of its rows."
        )


def _decoded_bytes(mode: str, size: tuple[int, int], target: tuple[int, int]) -> int:
    """The memory an image of this mode and size takes at the peak of its preparation: decoded, converted when its
    mode must change, (with an alpha channel) the premultiplied copy Pillow resizes instead, and the resize's
    intermediate image (the target's width by the source's height)."""
    converted = _converted_mode(mode, has_alpha=True)
    per_pixel = _PIXEL_BYTES.get(mode, 4)
    if converted != mode:
        per_pixel += _PIXEL_BYTES.get(converted, 4)
    if converted in ("RGBA", "LA"):
        per_pixel += 4
    resizing = target[0] * size[1] * 4 if target != size else 0
    return size[0] * size[1] * per_pixel + resizing


def _converted_mode(mode: str, *, has_alpha: bool) -> str:
    """The mode an image is resized and encoded in: its own when it can be, else the nearest that can."""
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return mode
    if mode == "1":
        return "L"  # black and white: grey resizes smoothly, a quarter of RGB's memory
    # Palettes resize badly (nearest neighbour only); 16-bit and float modes do not encode as JPEG.
    return "RGBA" if has_alpha else "RGB"


def _check_decoded_size(mode: str, size: tuple[int, int], target: tuple[int, int]) -> None:
    needed = _decoded_bytes(mode, size, target)
    if needed > MAX_DECODED_BYTES:
        width, height = size
        raise ImageTooLarge(
            f"The image ({width:,} by {height:,} pixels, {_mode_words(mode)}) would need "
            f"{-(-needed // 2**20):,} MB of memory to read; at most {MAX_DECODED_BYTES // 2**20:,} MB is accepted. "
            "Save it with fewer pixels (or 8 bits per channel)."
        )


def _mode_words(mode: str) -> str:
    if mode.startswith("I;16") or mode in ("I", "F"):
        return "16 or 32 bits per channel"
    return {"1": "black and white", "L": "grey", "LA": "grey with transparency", "P": "a palette"}.get(
        mode, "colour with transparency" if "A" in mode else "colour"
    )


# --- lossless metadata removal ------------------------------------------------------------------------------------
# Each returns the file without its metadata and the first EXIF block it removed (for the orientation).
_JPEG_KEEP_APP = {0xE0: b"", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}  # marker -> what its payload starts with


def _keep_jpeg_segment(marker: int, payload: bytes) -> bool:
    """Everything the decoder needs; of the application segments only JFIF (APP0), the ICC profile (APP2) and
    Adobe's colour transform (APP14). EXIF/XMP (APP1), IPTC (APP13), MPF (APP2), makers' notes (APP3-APP15) and
    comments go."""
    if marker == 0xFE:
        return False
    if 0xE0 <= marker <= 0xEF:
        prefix = _JPEG_KEEP_APP.get(marker)
        return prefix is not None and payload.startswith(prefix)
    return True


def _strip_jpeg(data: bytes) -> tuple[bytes, bytes | None]:
    out = [b"\xff\xd8"]
    exif = None
    size = len(data)
    pos = 2
    while pos < size:
        if data[pos] != 0xFF or pos + 1 >= size:
            raise UnsupportedImage("The JPEG file is damaged.")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:  # EOI: anything after it (e.g. MPF's secondary images, with their own EXIF) goes
            out.append(b"\xff\xd9")
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4])
        if end <= pos + 3 or end > size:
            raise UnsupportedImage("The JPEG file is damaged.")
        payload = data[pos + 4 : end]
        if _keep_jpeg_segment(marker, payload):
            out.append(data[pos:end])
        elif exif is None and marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            exif = payload
        pos = end
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker that is not RSTn or stuffing
            scan_end = _jpeg_scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    return b"".join(out), exif


def _jpeg_scan_end(data: bytes, pos: int) -> int:
    size = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= size:
            return size
        following = data[pos + 1]
        if following == 0xFF:
            pos += 1
        elif following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        else:
            return pos


# Everything that decides how pixels look; text (tEXt, zTXt, iTXt: XMP lives there), eXIf, tIME and private chunks go.
_PNG_KEEP = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP",
    b"mDCV", b"cLLI", b"mDCv", b"cLLi", b"bKGD", b"pHYs", b"hIST", b"acTL", b"fcTL", b"fdAT",
}  # fmt: skip


def _strip_png(data: bytes) -> tuple[bytes, bytes | None]:
    out = [data[:8]]
    exif = None
    pos = 8
    size = len(data)
    while pos + 8 <= size:
        length = int.from_bytes(data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > size:
            raise UnsupportedImage("The PNG file is damaged.")
        if kind in _PNG_KEEP:
            out.append(data[pos:end])
        elif kind == b"eXIf" and exif is None:
            exif = data[pos + 8 : end - 4]
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out), exif


_WEBP_KEEP = {b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM", b"ANMF"}
_VP8X_EXIF = 0x08
_VP8X_XMP = 0x04


def _strip_webp(data: bytes) -> tuple[bytes, bytes | None]:
    out = []
    exif = None
    pos = 12
    size = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= size:
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + length + (length & 1)
        if pos + 8 + length > size:
            raise UnsupportedImage("The WebP file is damaged.")
        chunk = data[pos : min(end, size)]
        if kind == b"VP8X" and length >= 1:
            chunk = chunk[:8] + bytes([chunk[8] & ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF]) + chunk[9:]
        if kind in _WEBP_KEEP:
            out.append(chunk)
        elif kind == b"EXIF" and exif is None:
            exif = data[pos + 8 : pos + 8 + length]
        pos = end
    body = b"WEBP" + b"".join(out)
    return b"RIFF" + len(body).to_bytes(4, "little") + body, exif


_STRIP: dict[str, Callable[[bytes], tuple[bytes, bytes | None]]] = {
    JPEG: _strip_jpeg,
    PNG: _strip_png,
    WEBP: _strip_webp,
}


# --- re-encoding --------------------------------------------------------------------------------------------------
def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _reencode(
    image: Image.Image,
    mime: str,
    orientation: int,
    *,
    source: bytes,
    lossy_source: bool,
    max_bytes: int,
    max_side: int,
) -> PreparedImage:
    target = _fit(image.size, max_side)
    icc_profile = image.info.get("icc_profile")
    if mime == JPEG:
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale straight from the DCT: a 12 MP photo decodes as 3 MP, in a
        # quarter of the time and memory; draft never goes below the target size.
        image.draft(None, target)
    _check_decoded_size(image.mode, image.size, target)
    if mime == PNG:
        _check_png_rows(source)
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels() from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise _damaged() from exc
    if image.mode == "CMYK":
        icc_profile = None  # a CMYK profile would misdescribe the RGB pixels
    converted = _converted_mode(image.mode, has_alpha="A" in image.mode or "transparency" in image.info)
    if converted != image.mode:
        image = image.convert(converted)
    if image.size != target:
        image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    if image.mode == "CMYK":
        image = image.convert("RGB")
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert(image.mode[:-1])  # an opaque alpha channel: JPEG can carry it
    image.info = {}  # nothing of the source's metadata may reach an encoder
    width, height = image.size
    if not lossy_source:
        # A screenshot or a drawing keeps its sharp edges in PNG if that fits.
        data = _encode(image, "PNG", icc_profile, limit=max_bytes)
        if data is not None:
            return PreparedImage(data, PNG, width, height, reencoded=True)
    # Transparency needs WebP (JPEG has none); everything opaque goes to JPEG, which every viewer reads.
    pil_format, out_mime = ("WEBP", WEBP) if image.mode in ("RGBA", "LA") else ("JPEG", JPEG)
    if pil_format == "WEBP" and image.mode == "LA":
        image = image.convert("RGBA")
    data = _highest_quality(
        lambda quality, limit: _encode(image, pil_format, icc_profile, quality, limit=limit), max_bytes
    )
    return PreparedImage(data, out_mime, width, height, reencoded=True)


def _webp_is_lossy(source: bytes) -> bool:
    """Whether a WebP file holds lossy (VP8) rather than lossless (VP8L) pixels: the first image chunk says."""
    lossy, lossless = source.find(b"VP8 ", 12), source.find(b"VP8L", 12)
    return lossy >= 0 and (lossless < 0 or lossy < lossless)


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


def _encode(
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


def _highest_quality(encode: Callable[[int, int], bytes | None], max_bytes: int) -> bytes:
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
