"""What a response body may cost: one layer of gzip or deflate (or none) decoded in steps, and the bytes counted on
the wire and decoded as they stream, for the outbound guard (`integrations.security.outbound`).

Requests ask for `Accept-Encoding: gzip, deflate` and a response may use one of those, once (or none): any other
coding (br, zstd, `gzip, gzip`, ...) is refused as `UnsupportedEncoding`. Bodies are decoded in steps of 64 KiB,
counting the decoded bytes (and the bytes on the wire) as they stream; a body over its cap stops there
(`ResponseTooLarge`): a compressed page never costs more memory than the cap it is read under.
"""

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx

ACCEPT_ENCODING = "gzip, deflate"
DECODE_STEP = 64 * 1024  # decoded bytes produced at most per step, whatever one compressed chunk expands to


class ResponseTooLarge(httpx.DecodingError):
    """A response body (decoded, or on the wire) was longer than the caller accepts."""


class UnsupportedEncoding(httpx.DecodingError):
    """A response used a content coding we did not ask for (anything but one layer of gzip or deflate)."""


@dataclass
class Meter:
    """Bytes received on the wire by the requests it is given to (see `get`), failed ones included."""

    wire_bytes: int = 0


_ENCODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


def content_coding(headers: httpx.Headers, host: str) -> str | None:
    """The one content coding of an answer ("gzip" or "deflate"), None for none; UnsupportedEncoding otherwise."""
    codings = [c.strip().lower() for c in headers.get_list("content-encoding", split_commas=True)]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _ENCODINGS:
        raise UnsupportedEncoding(f"{host} answered with content coding {', '.join(codings)!r}")
    return _ENCODINGS[codings[0]]


class _Inflater:
    """Decodes gzip or deflate a step at a time: however much a chunk expands to, at most DECODE_STEP bytes are made
    before the caller has counted them."""

    def __init__(self, coding: str) -> None:
        self._deflate = coding == "deflate"
        self._object = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._object.eof:
            try:
                out = self._object.decompress(data, DECODE_STEP)
            except zlib.error as exc:
                if self._deflate and not self._started:  # "deflate" sent without its zlib wrapper, as many do
                    self._object, self._deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                    continue
                raise httpx.DecodingError(f"the compressed body is damaged ({exc})") from exc
            self._started = True
            if out:
                yield out
            data = self._object.unconsumed_tail
            if not data and len(out) < DECODE_STEP:
                return  # everything given was decoded (a full step may have more waiting: go round again)

    def finish(self) -> bytes:
        # Everything fed was decoded step by step: what is left is at most what zlib holds back (its window).
        return b"" if self._object.eof else self._object.flush()


def decode_body(chunks: Iterable[bytes], *, coding: str | None, limit: int, meter: Meter | None) -> Iterator[bytes]:
    """The body whose `chunks` arrive on the wire in `coding` ("gzip", "deflate" or None), decoded; `meter` counts the
    wire bytes. `ResponseTooLarge` as soon as the bytes on the wire, or decoded, pass `limit`."""
    inflater = _Inflater(coding) if coding else None
    wire = decoded = 0
    for chunk in chunks:
        wire += len(chunk)
        if meter is not None:
            meter.wire_bytes += len(chunk)
        if wire > limit:
            raise ResponseTooLarge(f"more than {limit} bytes")
        for piece in inflater.feed(chunk) if inflater else (chunk,):
            decoded += len(piece)
            if decoded > limit:
                raise ResponseTooLarge(f"more than {limit} bytes once decoded")
            yield piece
    if inflater and (rest := inflater.finish()):
        if decoded + len(rest) > limit:
            raise ResponseTooLarge(f"more than {limit} bytes once decoded")
        yield rest
