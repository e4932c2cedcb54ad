"""Images that are damaged or cost far more to decode than their files suggest: refused, in words, before they cost
a worker its memory (issue 16, items 15 and 16)."""

import io
import struct
import zlib

import pytest
from PIL import Image

from integrations.bluesky.posts import images
from integrations.bluesky.posts.images import ImageTooLarge, UnsupportedImage, checks, encoding, prepare
from tests.bluesky.posts.test_images import photo, png_chunk, saved


def png_of(width: int, height: int, depth: int, colour: int, rows: bytes, *, interlace: int = 0) -> bytes:
    """A PNG with exactly this header and this (uncompressed) image data."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows, 9))
        + png_chunk(b"IEND", b"")
    )


def rgb_rows(image: Image.Image, count: int) -> bytes:
    raw, width = image.tobytes(), image.width * 3
    return b"".join(b"\x00" + raw[row * width : (row + 1) * width] for row in range(count))


@pytest.mark.parametrize("size", [(300, 200), (2400, 1600)], ids=["sent-as-it-is", "re-encoded"])
def test_a_jpeg_cut_in_half_is_refused(size):
    whole = saved(photo(*size), "JPEG", quality=90)
    assert prepare(whole).width == min(size[0], 2000)
    with pytest.raises(UnsupportedImage) as caught:
        prepare(whole[: len(whole) // 2])
    assert "damaged" in str(caught.value)


@pytest.mark.parametrize("size", [(300, 200), (2400, 1600)], ids=["sent-as-it-is", "re-encoded"])
def test_a_png_missing_most_of_its_rows_is_refused(size):
    """The compressed data ends cleanly after a tenth of the rows: Pillow fills the rest with black."""
    picture = photo(*size)
    whole = png_of(*size, 8, 2, rgb_rows(picture, size[1]))
    assert prepare(whole).width == min(size[0], 2000)
    with pytest.raises(UnsupportedImage) as caught:
        prepare(png_of(*size, 8, 2, rgb_rows(picture, size[1] // 10)))
    assert "its data ends after 10% of its rows" in str(caught.value)


def test_a_png_whose_data_is_cut_short_is_refused():
    picture = photo(300, 200)
    header = struct.pack(">IIBBBBB", 300, 200, 8, 2, 0, 0, 0)
    cut = zlib.compress(rgb_rows(picture, 200))[:-200]
    with pytest.raises(UnsupportedImage):
        prepare(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", cut) + png_chunk(b"IEND", b""))


def test_an_interlaced_png_is_counted_by_its_passes():
    whole = saved(photo(301, 203), "PNG")
    interlaced = Image.open(io.BytesIO(whole))
    buffer = io.BytesIO()
    interlaced.save(buffer, "PNG", interlace=1)  # Pillow writes Adam7 only when asked through the encoder options
    assert prepare(buffer.getvalue()).width == 301


def test_a_small_png_that_would_need_hundreds_of_megabytes_is_refused_before_decoding():
    """190 KB on the wire, 7,000 by 7,000 pixels at 16 bits per channel with transparency: ~400 MB to prepare,
    though its pixel count is within the cap."""
    assert checks.MAX_PIXELS >= 7000 * 7000
    bomb = png_of(7000, 7000, 16, 6, b"\x00" * 56_001 * 40)  # a few rows are enough: it is refused first
    with pytest.raises(ImageTooLarge) as caught:
        prepare(bomb)
    message = str(caught.value)
    assert "7,000 by 7,000 pixels, colour with transparency" in message
    assert "would need 428 MB of memory" in message and "at most 160 MB" in message


def test_the_same_pixels_in_black_and_white_are_accepted():
    """The bound is what decoding needs: 49 MP at one byte a pixel fit where 16-bit colour does not."""
    picture = Image.new("1", (7000, 7000), 1)
    picture.paste(0, (1000, 1000, 6000, 6000))
    prepared = prepare(saved(picture, "PNG"))
    assert (prepared.width, prepared.height) == (2000, 2000)
    with Image.open(io.BytesIO(prepared.data)) as sent:
        assert sent.convert("L").getpixel((1000, 1000)) == 0 and sent.convert("L").getpixel((10, 10)) == 255


@pytest.mark.parametrize(
    ("mode", "size", "fits"),
    [
        ("RGB", (6000, 4000), True),  # a 24 MP photo saved as PNG
        ("RGBA", (5120, 2880), True),  # a 5K screenshot
        ("RGB", (7000, 7000), False),
        ("I;16", (7000, 7000), False),
        ("P", (7000, 7000), False),
        ("L", (7000, 7000), True),
    ],
)
def test_the_memory_bound_follows_the_mode(mode, size, fits):
    target = encoding.fit(size, images.MAX_SIDE)
    assert (checks.decoded_bytes(mode, size, target) <= checks.MAX_DECODED_BYTES) is fits
