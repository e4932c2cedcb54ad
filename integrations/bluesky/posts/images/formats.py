"""What an image is to the pipeline: the four formats it recognises by their first bytes, what it sends, and the
refusals every step of it can raise."""

from dataclasses import dataclass

from integrations.exceptions import IntegrationError

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
GIF = "image/gif"
PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP", GIF: "GIF"}


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


def webp_is_lossy(source: bytes) -> bool:
    """Whether a WebP file holds lossy (VP8) rather than lossless (VP8L) pixels: the first image chunk says."""
    lossy, lossless = source.find(b"VP8 ", 12), source.find(b"VP8L", 12)
    return lossy >= 0 and (lossless < 0 or lossy < lossless)
