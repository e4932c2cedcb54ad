"""Lossless metadata removal: the marker segments or chunks that carry EXIF (GPS included), XMP, IPTC and comments
are cut out byte by byte, so the pixels are not re-encoded and lose nothing; and the EXIF orientation they carried.

Each `strip_*` returns the file without its metadata and the first EXIF block it removed (for the orientation).
"""

from collections.abc import Callable

from PIL import Image

from integrations.bluesky.posts.images.formats import JPEG, PNG, WEBP, UnsupportedImage

# The same table as PIL.ImageOps.exif_transpose: applied to the resized image, it turns far fewer pixels.
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112


def orientation(exif: bytes | None) -> int:
    """The EXIF orientation (1 to 8) of an EXIF block; 1, upright, when there is none or it cannot be read."""
    if not exif:
        return 1
    parsed = Image.Exif()
    try:
        parsed.load(exif)
        value = parsed.get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block is dropped anyway; it cannot turn the picture
        return 1
    return value if value in TRANSPOSE else 1


# --- JPEG ---------------------------------------------------------------------------------------------------------
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


def strip_jpeg(data: bytes) -> tuple[bytes, bytes | None]:
    """A JPEG file without its metadata segments, and its first EXIF block."""
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
        pos, found = _copy_jpeg_segment(data, pos, marker, out)
        if exif is None:
            exif = found
    return b"".join(out), exif


def _copy_jpeg_segment(data: bytes, pos: int, marker: int, out: list[bytes]) -> tuple[int, bytes | None]:
    """Append the marker segment at `pos` to `out` when it is kept (a scan with its entropy-coded data); return where
    the next marker starts and, for an EXIF segment (which goes), its payload."""
    size = len(data)
    end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4])
    if end <= pos + 3 or end > size:
        raise UnsupportedImage("The JPEG file is damaged.")
    payload = data[pos + 4 : end]
    exif = None
    if _keep_jpeg_segment(marker, payload):
        out.append(data[pos:end])
    elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
        exif = payload
    if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker that is not RSTn or stuffing
        scan_end = _jpeg_scan_end(data, end)
        out.append(data[end:scan_end])
        end = scan_end
    return end, exif


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


# --- PNG ----------------------------------------------------------------------------------------------------------
# Everything that decides how pixels look; text (tEXt, zTXt, iTXt: XMP lives there), eXIf, tIME and private chunks go.
_PNG_KEEP = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP",
    b"mDCV", b"cLLI", b"mDCv", b"cLLi", b"bKGD", b"pHYs", b"hIST", b"acTL", b"fcTL", b"fdAT",
}  # fmt: skip


def strip_png(data: bytes) -> tuple[bytes, bytes | None]:
    """A PNG file without its metadata chunks, and its first eXIf chunk's data."""
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


# --- WebP ---------------------------------------------------------------------------------------------------------
_WEBP_KEEP = {b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM", b"ANMF"}
_VP8X_EXIF = 0x08
_VP8X_XMP = 0x04


def strip_webp(data: bytes) -> tuple[bytes, bytes | None]:
    """A WebP file without its EXIF and XMP chunks (and their flags in VP8X), and its first EXIF chunk's data."""
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


STRIP: dict[str, Callable[[bytes], tuple[bytes, bytes | None]]] = {
    JPEG: strip_jpeg,
    PNG: strip_png,
    WEBP: strip_webp,
}
