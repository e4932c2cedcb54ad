"""Images for posts (and link-card thumbnails): recognised by content, stripped of metadata, sized for Bluesky.

`prepare()` turns an uploaded file into the bytes to send as a blob: JPEG, PNG, WebP and GIF are recognised by their
first bytes (never the file name or Content-Type); anything else is `unsupported_image`. An image within the byte
limit and at most `max_side` pixels on its long side is sent as it is, minus its metadata: the marker segments or
chunks that carry EXIF (GPS included), XMP, IPTC and comments are cut out byte by byte, so the pixels are not
re-encoded and lose nothing. Anything else (larger, an EXIF orientation to apply, a GIF or another animation, of which
Bluesky shows only a still) is decoded once, turned upright, resized and re-encoded at the highest quality that fits.

Pure functions on bytes: storing uploads and sending blobs is the caller's business. This module is the face; the
steps are `formats` (recognising a file, the refusals), `checks` (damaged and costly images refused before decoding),
`metadata` (the lossless removal) and `encoding` (decoding, resizing and re-encoding).
"""

from typing import IO

from integrations.bluesky.posts.images import metadata
from integrations.bluesky.posts.images.checks import check_complete, open_image
from integrations.bluesky.posts.images.encoding import reencode
from integrations.bluesky.posts.images.formats import (
    GIF,
    JPEG,
    WEBP,
    AnimatedImage,
    ImageError,
    ImageTooLarge,
    PreparedImage,
    UnsupportedImage,
    sniff,
    webp_is_lossy,
)
from integrations.conf import app_settings

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


class TooManyImages(ImageError):
    code = "too_many_images"


class AltTextRequired(ImageError):
    code = "alt_text_required"


class AltTextTooLong(ImageError):
    code = "alt_text_too_long"


def prepare(
    data: bytes | IO[bytes],
    *,
    max_bytes: int = POST_IMAGE_MAX_BYTES,
    max_side: int = MAX_SIDE,
    first_frame: bool = True,
) -> PreparedImage:
    """The image to send for `data` (bytes or a binary file, read from its current position).

    Raises `UnsupportedImage` for anything but a readable JPEG, PNG, WebP or GIF, and `ImageTooLarge` for a file over
    `MAX_SOURCE_BYTES`, an image over `checks.MAX_PIXELS` (a decompression bomb) or one that fits `max_bytes` at no
    quality we accept. `max_bytes` is the post image's limit by default; a link card's thumbnail passes
    `THUMB_MAX_BYTES`. An animation becomes its first frame, or with `first_frame=False` is refused with
    `AnimatedImage` (a user's upload: they choose).
    """
    source = _read(data)
    mime = sniff(source)
    if mime is None:
        raise UnsupportedImage("Only JPEG, PNG, WebP and GIF images can be posted.")
    image = open_image(source, mime)
    width, height = image.size
    animated = mime != JPEG and bool(getattr(image, "is_animated", False))
    if animated and not first_frame:
        raise AnimatedImage("The image is animated, and animations cannot be posted yet.")
    # Bluesky shows a still of an animation, so we choose which: the first frame, as the user sees it first.
    still = mime == GIF or animated
    orientation = 1
    if not still:
        stripped, exif = metadata.STRIP[mime](source)
        orientation = metadata.orientation(exif)
        if orientation == 1 and max(width, height) <= max_side and len(stripped) <= max_bytes:
            check_complete(stripped, mime)
            return PreparedImage(stripped, mime, width, height, reencoded=False)
        del stripped
    lossy_source = mime == JPEG or (mime == WEBP and webp_is_lossy(source))
    return reencode(
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
