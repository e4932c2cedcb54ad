"""The image pipeline: sniffing by content, lossless metadata removal, orientation, resizing, limits, alt text.

Every image is made here with Pillow, with the metadata a phone writes (EXIF with GPS, XMP, IPTC, an ICC profile)
carrying a LEAKY marker that must not survive.
"""

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageCms, ImageDraw

from integrations.adapter import IntegrationsAdapter, get_adapter
from integrations.bluesky.posts import images
from integrations.bluesky.posts.images import (
    MAX_ALT_TEXT,
    POST_IMAGE_MAX_BYTES,
    THUMB_MAX_BYTES,
    AltTextRequired,
    AltTextTooLong,
    ImageTooLarge,
    TooManyImages,
    UnsupportedImage,
    check_alt,
    check_image_count,
    encoding,
    prepare,
    sniff,
)

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.5N" exif:Make="LEAKYXMP"/></rdf:RDF>'
    b'</x:xmpmeta><?xpacket end="w"?>'
)
LEAKS = (b"LEAKY", b"Exif\x00\x00", b"<x:xmpmeta", b"48,51.5N")


def exif_block(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "LEAKYCAM"  # Make
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.5)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.2)
    gps[27] = b"ASCII\x00\x00\x00LEAKYGPS"  # GPSProcessingMethod
    return exif


def assert_no_metadata(data: bytes) -> None:
    for leak in LEAKS:
        assert leak not in data, leak
    with Image.open(io.BytesIO(data)) as image:
        assert not image.getexif()
        assert not image.getexif().get_ifd(0x8825)
        assert "xmp" not in image.info and "XML:com.adobe.xmp" not in image.info


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGBA").tobytes()


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int, height: int, noise: float = 40) -> Image.Image:
    """Noise over gradients: compresses like a photo, not like a flat drawing."""
    grain = Image.effect_noise((width, height), noise).convert("L")
    ramp = Image.linear_gradient("L").resize((width, height))
    red = Image.blend(grain, ramp, 0.6)
    mirrored = grain.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    green = Image.blend(mirrored, ramp.transpose(Image.Transpose.ROTATE_180), 0.5)
    return Image.merge("RGB", (red, green, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))


def screenshot(width: int = 1200, height: int = 800) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for top in range(40, height - 40, 60):
        draw.rectangle((40, top, width - 40 - top // 3, top + 20), fill=(30, 60, 200))
    return image


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        chunks.append((data[pos + 4 : pos + 8], data[pos : pos + 12 + length]))
        pos += 12 + length
    return chunks


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 12
    while pos < len(data):
        length = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        end = pos + 8 + length + (length & 1)
        chunks.append((data[pos : pos + 4], data[pos:end]))
        pos = end
    return chunks


@pytest.fixture(scope="module")
def camera_jpeg() -> bytes:
    """A 12-megapixel photo as a camera writes it: EXIF with GPS, XMP, an ICC profile."""
    return saved(photo(4000, 3000), "JPEG", quality=92, exif=exif_block(), icc_profile=ICC, xmp=XMP)


# --- recognised by content -------------------------------------------------------------------------------------
def test_formats_are_recognised_by_their_first_bytes():
    small = Image.new("RGB", (4, 4), "red")
    assert sniff(saved(small, "JPEG")) == "image/jpeg"
    assert sniff(saved(small, "PNG")) == "image/png"
    assert sniff(saved(small, "WEBP")) == "image/webp"
    assert sniff(saved(small, "GIF")) == "image/gif"
    assert sniff(saved(small, "BMP")) is None
    assert sniff(saved(small, "TIFF")) is None
    assert sniff(b"") is None


def test_a_png_named_jpg_is_a_png():
    upload = SimpleUploadedFile("holiday.jpg", saved(screenshot(), "PNG"), content_type="image/jpeg")
    assert prepare(upload).mime == "image/png"


@pytest.mark.parametrize(
    "content",
    [b"hello, this is text\n", saved(Image.new("RGB", (4, 4)), "BMP"), b"\xff\xd8\xff\xe0 not really a jpeg"],
    ids=["text", "bmp", "broken-jpeg"],
)
def test_anything_else_is_refused_whatever_its_name_and_type(content):
    upload = SimpleUploadedFile("photo.jpg", content, content_type="image/jpeg")
    with pytest.raises(UnsupportedImage) as caught:
        prepare(upload)
    assert caught.value.code == "unsupported_image"


# --- lossless metadata removal ---------------------------------------------------------------------------------
def test_jpeg_loses_exif_xmp_iptc_comments_and_trailers_and_nothing_else():
    bare = saved(photo(800, 600), "JPEG", quality=90, icc_profile=ICC)  # JFIF (APP0) and the ICC profile (APP2)
    metadata = (
        jpeg_segment(0xE1, b"Exif\x00\x00" + exif_block().tobytes())
        + jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP)
        + jpeg_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0a\x1c\x02\x5a\x00\x05LEAKY")
        + jpeg_segment(0xE5, b"LEAKY maker note")
        + jpeg_segment(0xFE, b"LEAKY comment")
    )
    # A phone's secondary image (MPF) after the end of the main one, with its own EXIF.
    trailer = b"\xff\xd8" + jpeg_segment(0xE1, b"Exif\x00\x00LEAKY") + b"\xff\xd9"
    source = bare[:2] + metadata + bare[2:] + trailer

    result = prepare(source)

    assert result.data == bare
    assert not result.reencoded and result.mime == "image/jpeg"
    assert (result.width, result.height) == (800, 600) and result.aspect_ratio == {"width": 800, "height": 600}
    assert pixels(result.data) == pixels(source)
    assert_no_metadata(result.data)
    assert Image.open(io.BytesIO(result.data)).info["icc_profile"] == ICC


def test_a_camera_jpeg_within_the_limits_keeps_its_pixels(camera_jpeg):
    small = saved(photo(1600, 1200, noise=10), "JPEG", quality=85, exif=exif_block(), icc_profile=ICC, xmp=XMP)
    result = prepare(small)
    assert not result.reencoded
    assert len(small) - len(result.data) >= len(exif_block().tobytes()) + len(XMP)
    assert pixels(result.data) == pixels(small)
    assert_no_metadata(result.data)


def test_png_loses_exif_and_text_chunks_and_nothing_else():
    bare = saved(screenshot(), "PNG", icc_profile=ICC)
    metadata = (
        png_chunk(b"eXIf", exif_block().tobytes())
        + png_chunk(b"tEXt", b"Comment\x00LEAKY")
        + png_chunk(b"zTXt", b"Author\x00\x00" + zlib.compress(b"LEAKY"))
        + png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP)
        + png_chunk(b"tIME", b"\x07\xea\x01\x02\x03\x04\x05")
    )
    ihdr_end = 8 + 25
    source = bare[:ihdr_end] + metadata + bare[ihdr_end:]

    result = prepare(source)

    assert result.data == bare
    assert not result.reencoded and result.mime == "image/png"
    assert pixels(result.data) == pixels(source)
    assert_no_metadata(result.data)
    assert [kind for kind, _ in png_chunks(result.data)] == [kind for kind, _ in png_chunks(bare)]


def test_webp_loses_its_exif_and_xmp_chunks_and_their_flags():
    source = saved(photo(800, 600, noise=10), "WEBP", quality=80, exif=exif_block(), xmp=XMP, icc_profile=ICC)
    before = webp_chunks(source)
    assert {b"EXIF", b"XMP ", b"ICCP"} <= {kind for kind, _ in before}

    result = prepare(source)

    after = webp_chunks(result.data)
    assert [kind for kind, _ in after] == [kind for kind, _ in before if kind not in (b"EXIF", b"XMP ")]
    vp8x = dict(after)[b"VP8X"]
    assert vp8x[8] & 0x0C == 0 and vp8x[8] & 0x20  # EXIF and XMP flags cleared, the ICC flag kept
    assert [chunk for kind, chunk in after if kind != b"VP8X"] == [
        chunk for kind, chunk in before if kind not in (b"VP8X", b"EXIF", b"XMP ")
    ]
    assert struct.unpack("<I", result.data[4:8])[0] == len(result.data) - 8
    assert not result.reencoded and result.mime == "image/webp"
    assert pixels(result.data) == pixels(source)
    assert_no_metadata(result.data)


def test_a_png_screenshot_within_the_limits_is_sent_untouched():
    source = saved(screenshot(), "PNG")
    result = prepare(io.BytesIO(source))
    assert result.data == source and not result.reencoded
    assert (result.width, result.height) == (1200, 800)


# --- orientation, size, quality --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_the_exif_orientation_is_applied_before_the_exif_goes(fmt):
    upright = Image.new("RGB", (300, 600), "red")  # tall: red on top, blue below
    upright.paste((0, 0, 255), (0, 300, 300, 600))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as the sensor wrote it: 600 x 300, on its side
    source = saved(stored, fmt, exif=exif_block(orientation=6), **({"quality": 95} if fmt != "PNG" else {}))

    result = prepare(source)

    assert result.reencoded
    assert (result.width, result.height) == (300, 600)
    with Image.open(io.BytesIO(result.data)) as image:
        image = image.convert("RGB")
        assert image.size == (300, 600)
        red, blue = image.getpixel((150, 100)), image.getpixel((150, 500))
        assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60
    assert_no_metadata(result.data)


def quality_of(data: bytes) -> int:
    """The libjpeg quality a JPEG was saved with, found by its quantization tables."""
    tables = Image.open(io.BytesIO(data)).quantization
    for quality in range(100, 0, -1):
        if Image.open(io.BytesIO(saved(Image.new("RGB", (8, 8)), "JPEG", quality=quality))).quantization == tables:
            return quality
    raise AssertionError("not a libjpeg quality")


def test_a_large_photo_is_resized_and_reencoded_at_the_highest_quality_that_fits(camera_jpeg):
    result = prepare(camera_jpeg)
    assert result.reencoded and result.mime == "image/jpeg"
    assert (result.width, result.height) == (2000, 1500)
    assert len(result.data) <= POST_IMAGE_MAX_BYTES
    assert quality_of(result.data) == 95  # this one fits at the top quality
    assert_no_metadata(result.data)
    assert Image.open(io.BytesIO(result.data)).info["icc_profile"] == ICC  # colours stay right


def test_a_photo_that_does_not_fit_at_the_top_quality_gets_the_highest_that_does():
    source = saved(photo(2000, 2000, noise=120), "JPEG", quality=98, exif=exif_block())
    assert len(source) > POST_IMAGE_MAX_BYTES
    result = prepare(source)
    quality = quality_of(result.data)
    assert result.reencoded and (result.width, result.height) == (2000, 2000)
    assert len(result.data) <= POST_IMAGE_MAX_BYTES
    assert 50 <= quality < 95
    decoded = Image.open(io.BytesIO(source))
    decoded.info = {}
    one_better = saved(decoded, "JPEG", quality=quality + 1, optimize=True)
    assert len(one_better) > POST_IMAGE_MAX_BYTES


def test_the_quality_search_finds_the_highest_fitting_quality():
    tried = []

    def encode(quality: int, limit: int) -> bytes | None:
        tried.append(quality)
        return b"x" * (quality * 1000) if quality * 1000 <= limit else None

    assert len(encoding.highest_quality(encode, 77_500)) == 77_000
    assert len(tried) <= 8
    with pytest.raises(ImageTooLarge):
        encoding.highest_quality(encode, 10_000)


def test_the_thumbnail_limit_is_a_parameter():
    source = saved(photo(1800, 1200, noise=60), "JPEG", quality=92)
    assert THUMB_MAX_BYTES < len(source) <= POST_IMAGE_MAX_BYTES
    assert prepare(source).data == source  # a post image: sent as it is
    thumb = prepare(source, max_bytes=THUMB_MAX_BYTES)
    assert thumb.reencoded and len(thumb.data) <= THUMB_MAX_BYTES and (thumb.width, thumb.height) == (1800, 1200)


def test_a_png_with_transparency_too_large_for_png_becomes_webp_and_stays_transparent():
    image = photo(2000, 1500, noise=80).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((2000, 1500)))
    source = saved(image, "PNG")
    assert len(source) > POST_IMAGE_MAX_BYTES
    result = prepare(source)
    assert result.mime == "image/webp" and len(result.data) <= POST_IMAGE_MAX_BYTES
    with Image.open(io.BytesIO(result.data)) as out:
        assert out.mode == "RGBA" and out.getchannel("A").getextrema()[0] < 10


def test_a_large_screenshot_stays_png():
    result = prepare(saved(screenshot(3000, 2000), "PNG"))
    assert result.reencoded and result.mime == "image/png" and (result.width, result.height) == (2000, 1333)


def test_a_gif_sends_its_first_frame_as_png():
    frames = [Image.new("RGB", (320, 200), color) for color in ("red", "green", "blue")]
    source = saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0, comment=b"LEAKY")
    result = prepare(source)
    assert result.mime == "image/png" and result.reencoded and (result.width, result.height) == (320, 200)
    assert Image.open(io.BytesIO(result.data)).convert("RGB").getpixel((5, 5)) == (255, 0, 0)
    assert_no_metadata(result.data)


# --- refusals ----------------------------------------------------------------------------------------------------
def with_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG claiming another size: what a decompression bomb's header looks like."""
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png_chunk(b"IHDR", ihdr) + png[33:]


@pytest.mark.parametrize("size", [(8000, 8000), (20000, 20000)], ids=["over-our-cap", "over-pillows-cap"])
def test_a_decompression_bomb_is_refused_before_decoding(size):
    source = with_size(saved(Image.new("1", (16, 16)), "PNG"), *size)
    with pytest.raises(ImageTooLarge) as caught:
        prepare(source)
    assert caught.value.code == "image_too_large" and "megapixels" in str(caught.value)


def test_a_file_over_the_upload_cap_is_refused_without_reading_it_all(monkeypatch):
    monkeypatch.setattr(images, "MAX_SOURCE_BYTES", 1000)
    upload = io.BytesIO(saved(photo(200, 200), "JPEG", quality=95))
    with pytest.raises(ImageTooLarge):
        prepare(upload)
    assert upload.tell() == 1001


# --- alt text and count ------------------------------------------------------------------------------------------
def test_alt_text_is_required_by_default(settings):
    with pytest.raises(AltTextRequired) as caught:
        check_alt("   ")
    assert caught.value.code == "alt_text_required"
    settings.INTEGRATIONS_POST_ALT_TEXT_REQUIRED = False
    assert check_alt(None) == ""
    assert check_alt("", required=False) == ""
    with pytest.raises(AltTextRequired):
        check_alt("", required=True)


def test_alt_text_has_at_most_2000_characters():
    assert check_alt("  A cat on a keyboard.\n") == "A cat on a keyboard."
    assert check_alt("é" * MAX_ALT_TEXT) == "é" * MAX_ALT_TEXT
    assert check_alt("🐈" * MAX_ALT_TEXT) == "🐈" * MAX_ALT_TEXT  # characters, not UTF-8 or UTF-16 units
    with pytest.raises(AltTextTooLong) as caught:
        check_alt("a" * (MAX_ALT_TEXT + 1))
    assert caught.value.code == "alt_text_too_long"


def test_a_post_carries_at_most_four_images():
    check_image_count(4)
    with pytest.raises(TooManyImages):
        check_image_count(5)


@pytest.mark.parametrize(
    "error", [UnsupportedImage("x"), ImageTooLarge("x"), TooManyImages(), AltTextRequired(), AltTextTooLong()]
)
def test_every_refusal_has_words(error):
    described = get_adapter().describe(error)
    assert described.http_status == 400 and described.message != IntegrationsAdapter().fallback[1]
