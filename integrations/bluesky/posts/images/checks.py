"""Damaged and costly images, refused before they are decoded: too many pixels, more memory than decoding may take,
a file cut short, PNG rows missing, a bad checksum."""

import io
import zlib

from PIL import Image, UnidentifiedImageError

from integrations.bluesky.posts.images.formats import JPEG, PIL_FORMAT, PNG, ImageTooLarge, UnsupportedImage

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


def open_image(source: bytes, mime: str) -> Image.Image:
    """The image in `source`, its header read and nothing decoded yet; refused when it cannot be read, has too many
    pixels or none."""
    try:
        image = Image.open(io.BytesIO(source), formats=[PIL_FORMAT[mime]])
    except Image.DecompressionBombError as exc:
        raise too_many_pixels() from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise damaged() from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise too_many_pixels(width, height)
    if width < 1 or height < 1:
        raise UnsupportedImage("The image has no pixels.")
    return image


def too_many_pixels(width: int = 0, height: int = 0) -> ImageTooLarge:
    """The refusal of an image over `MAX_PIXELS` (of a size Pillow did not say, when none is given)."""
    size = f"{width:,} by {height:,} pixels" if width else "too many pixels"
    return ImageTooLarge(f"The image is {size}; at most {MAX_PIXELS // 1_000_000} megapixels are accepted.")


def damaged() -> UnsupportedImage:
    """The refusal of an image that cannot be read."""
    return UnsupportedImage("The image could not be read; it may be damaged.")


def decode(image: Image.Image, mime: str, source: bytes, target: tuple[int, int]) -> None:
    """Decode `image` (opened from `source`) to be resized to `target`, once it is known to fit in memory and, for a
    PNG, to have all its rows."""
    if mime == JPEG:
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale straight from the DCT: a 12 MP photo decodes as 3 MP, in a
        # quarter of the time and memory; draft never goes below the target size.
        image.draft(None, target)
    check_decoded_size(image.mode, image.size, target)
    if mime == PNG:
        check_png_rows(source)
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise too_many_pixels() from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise damaged() from exc


def check_complete(data: bytes, mime: str) -> None:
    """A file sent untouched is decoded in full first (a JPEG at 1/8 scale: every byte of it is still read), so a
    damaged one (cut short, rows missing, a bad checksum) is refused here rather than shown broken on Bluesky."""
    if mime == PNG:
        check_png_rows(data)
    try:
        with Image.open(io.BytesIO(data), formats=[PIL_FORMAT[mime]]) as image:
            image.verify()  # a PNG's chunk checksums
        with Image.open(io.BytesIO(data), formats=[PIL_FORMAT[mime]]) as image:
            if mime == JPEG:
                image.draft(None, (1, 1))
            image.load()
    except Exception as exc:
        raise damaged() from exc


# --- PNG rows -----------------------------------------------------------------------------------------------------
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def check_png_rows(data: bytes) -> None:
    """Refuse a PNG whose image data ends before its last row. Pillow accepts a compressed stream that ends early
    but cleanly (the missing rows stay blank), so the rows are counted here: the data is decompressed piece by
    piece, never held whole, and the count stops as soon as every row is there."""
    header, streams = _png_header_and_data(data)
    if header is None or header[9] not in _PNG_CHANNELS:
        raise damaged()
    expected = _png_row_bytes(header)
    produced = _inflated_up_to(streams, expected)
    if produced < expected:
        raise UnsupportedImage(
            f"The image is damaged: its data ends after {produced * 100 // max(expected, 1)}% of its rows."
        )


def _png_header_and_data(data: bytes) -> tuple[bytes | None, list[memoryview]]:
    """The IHDR chunk's data and the IDAT chunks' data, in order (chunks after IEND are not read)."""
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
    return header, streams


def _png_row_bytes(header: bytes) -> int:
    """How many bytes the image data of a PNG with this IHDR inflates to, over every interlace pass."""
    width, height = int.from_bytes(header[0:4]), int.from_bytes(header[4:8])
    bits = header[8] * _PNG_CHANNELS[header[9]]
    passes = _ADAM7 if header[12] == 1 else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        columns, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and rows > 0:
            expected += rows * (1 + -(-columns * bits // 8))  # each row: its filter byte and its samples
    return expected


def _inflated_up_to(streams: list[memoryview], expected: int) -> int:
    """How many bytes the zlib data in `streams` inflates to, counted until it reaches `expected`."""
    inflater, produced = zlib.decompressobj(), 0
    try:
        for stream in streams:
            pending = bytes(stream)
            while pending:
                produced += len(inflater.decompress(pending, 1 << 16))
                if produced >= expected:
                    return produced
                pending = inflater.unconsumed_tail
        produced += len(inflater.flush())
    except zlib.error as exc:
        raise damaged() from exc
    return produced


# --- memory -------------------------------------------------------------------------------------------------------
def decoded_bytes(mode: str, size: tuple[int, int], target: tuple[int, int]) -> int:
    """The memory an image of this mode and size takes at the peak of its preparation: decoded, converted when its
    mode must change, (with an alpha channel) the premultiplied copy Pillow resizes instead, and the resize's
    intermediate image (the target's width by the source's height)."""
    converted = converted_mode(mode, has_alpha=True)
    per_pixel = _PIXEL_BYTES.get(mode, 4)
    if converted != mode:
        per_pixel += _PIXEL_BYTES.get(converted, 4)
    if converted in ("RGBA", "LA"):
        per_pixel += 4
    resizing = target[0] * size[1] * 4 if target != size else 0
    return size[0] * size[1] * per_pixel + resizing


def converted_mode(mode: str, *, has_alpha: bool) -> str:
    """The mode an image is resized and encoded in: its own when it can be, else the nearest that can."""
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return mode
    if mode == "1":
        return "L"  # black and white: grey resizes smoothly, a quarter of RGB's memory
    # Palettes resize badly (nearest neighbour only); 16-bit and float modes do not encode as JPEG.
    return "RGBA" if has_alpha else "RGB"


def check_decoded_size(mode: str, size: tuple[int, int], target: tuple[int, int]) -> None:
    """`ImageTooLarge` when preparing an image of this mode and size would take more than `MAX_DECODED_BYTES`."""
    needed = decoded_bytes(mode, size, target)
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
