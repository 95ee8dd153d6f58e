"""What decoding a file will cost, known before decoding it.

A file's size says little about its decoded size: a 300 kB PNG of zeros can declare 20000 x
20000 16-bit pixels, 3.2 GB once decoded, and an H.264 stream can declare a small frame and
switch to a huge one mid-way. So images are measured from their header (``read_image_header``)
and video frames from their stream parameters (``frame_bytes``), in bytes as decoded, and
FFmpeg's decoders are told the most pixels a frame may have (``limit_decoder``), so that no
frame larger than the stream declared is ever allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

#: Options for ``av.open`` that keep it from decoding anything. Opening a file decodes a few
#: frames to learn about its streams, before anything has seen the size they declare; with no
#: pixels allowed the decoders fail there (quietly), and the size comes from the headers alone.
#: Such an opening loses what only that decoding finds (a display rotation), so it is for
#: reading the declared size only (``open_video``).
OPEN_WITHOUT_DECODING = {"max_pixels": "1"}

#: Slack over a stream's declared size in ``max_pixels``: decoders check it against the width
#: rounded up to their row alignment (up to 64 px) and the coded height (a multiple of 16).
_PIXEL_SLACK = 128

#: JPEG start-of-frame markers, which carry the size: baseline, extended, progressive, lossless,
#: and their arithmetic-coded and differential forms.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: The progressive ones: their decoder keeps 16-bit coefficients for the whole image.
_JPEG_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
#: PNG chunks read before the pixel data; a file with more is counted as the worst case.
_PNG_CHUNKS_SCANNED = 64


@dataclass(frozen=True)
class ImageHeader:
    """An image's size and sample layout as its header states them, stored (not displayed)
    orientation."""

    width: int
    height: int
    #: Channels as decoded: 1 grey, 2 grey and alpha, 3 RGB, 4 RGBA or CMYK. Palette and
    #: 1-bit images count as what they turn into, RGB (RGBA with transparency).
    channels: int
    #: 2 for 16-bit samples, and for JPEGs whose decoder keeps 16-bit coefficients for the
    #: whole image (progressive, or more than 8 bits of precision); otherwise 1.
    bytes_per_sample: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        return self.pixels * self.channels * self.bytes_per_sample

    def describe(self) -> str:
        """``"4 channels of 16 bits"``: what the decoded size is made of."""
        plural = "s" if self.channels > 1 else ""
        return f"{self.channels} channel{plural} of {8 * self.bytes_per_sample} bits"


def read_image_header(path: Path, fmt: str) -> ImageHeader | None:
    """The header of a PNG or JPEG (``fmt`` is the sniffed ``png`` or ``jpg``), read before any
    decoder touches the file; None when it cannot be found (the decoder then decides)."""
    with path.open("rb") as f:
        if fmt == "png":
            return _png_header(f)
        if fmt == "jpg":
            return _jpeg_header(f)
    return None


def header_size(path: Path, fmt: str) -> tuple[int, int] | None:
    """Width and height from a PNG or JPEG header."""
    header = read_image_header(path, fmt)
    return (header.width, header.height) if header is not None else None


def _png_header(f: BinaryIO) -> ImageHeader | None:
    head = f.read(8 + 8 + 13)
    if len(head) != 29 or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    transparent = _png_has_transparency(f) if colour in (0, 2, 3) else False
    bytes_per_sample = 2 if depth == 16 else 1
    if colour == 3 or (colour == 0 and depth < 8):
        # Palette and low-bit-depth grey are expanded to 8-bit colour to be used.
        return ImageHeader(width, height, 4 if transparent else 3, 1)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour, 4) + (1 if transparent else 0)
    return ImageHeader(width, height, channels, bytes_per_sample)


def _png_has_transparency(f: BinaryIO) -> bool:
    """Whether a tRNS chunk comes before the pixel data (the file is positioned after IHDR)."""
    f.seek(4, 1)  # IHDR's CRC
    for _ in range(_PNG_CHUNKS_SCANNED):
        head = f.read(8)
        if len(head) != 8:
            return False
        length, kind = struct.unpack(">I4s", head)
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        f.seek(length + 4, 1)
    return True


def _jpeg_header(f: BinaryIO) -> ImageHeader | None:
    if f.read(2) != b"\xff\xd8":
        return None
    while True:
        byte = f.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        raw_length = f.read(2)
        if len(raw_length) != 2:
            return None
        (length,) = struct.unpack(">H", raw_length)
        if marker in _JPEG_SOF:
            frame = f.read(6)
            if len(frame) != 6:
                return None
            precision, height, width, components = struct.unpack(">BHHB", frame)
            wide = precision > 8 or marker in _JPEG_PROGRESSIVE
            return ImageHeader(width, height, max(1, components), 2 if wide else 1)
        f.seek(length - 2, 1)
        # The marker loop expects 0xFF next; anything else means a corrupt header.
        if f.read(1) != b"\xff":
            return None
        f.seek(-1, 1)


# --- video --------------------------------------------------------------------------------------


def frame_bytes(width: int, height: int, pix_fmt: av.VideoFormat | None) -> int:
    """A frame's size once decoded to RGB (RGBA when the format has alpha), with two bytes a
    sample for formats deeper than 8 bits; an unknown format counts as 8-bit RGB."""
    components = pix_fmt.components if pix_fmt is not None else ()
    channels = 4 if any(c.is_alpha for c in components) else 3
    bytes_per_sample = 2 if any(c.bits > 8 for c in components) else 1
    return width * height * channels * bytes_per_sample


def decoder_pixel_limit(width: int, height: int) -> int:
    """FFmpeg's ``max_pixels`` for a stream declared ``width`` x ``height``: its own frames
    decode, anything much larger fails to."""
    return (width + _PIXEL_SLACK) * (height + _PIXEL_SLACK)


def open_video(
    path: Path,
    *,
    check: Callable[[av.container.InputContainer], None] | None = None,
    metadata_errors: str = "strict",
) -> av.container.InputContainer:
    """Open ``path`` to decode its first video stream, whose decoder refuses any frame larger
    than the stream declares (an H.264 stream may switch to 16k x 16k frames mid-way).

    The file is opened twice: first decoding nothing, to read the declared size and let
    ``check`` refuse the file from its headers; then with FFmpeg's ``max_pixels`` set to that
    size, so that the few frames opening decodes cannot be larger either.
    """
    with av.open(
        str(path), mode="r", metadata_errors=metadata_errors, options=OPEN_WITHOUT_DECODING
    ) as headers:
        if check is not None:
            check(headers)
        declared = headers.streams.video[0].codec_context if headers.streams.video else None
        limit = decoder_pixel_limit(declared.width, declared.height) if declared else 1
    container = av.open(
        str(path), mode="r", metadata_errors=metadata_errors, options={"max_pixels": str(limit)}
    )
    try:
        if container.streams.video:
            limit_decoder(container.streams.video[0])
    except BaseException:
        container.close()
        raise
    return container


def limit_decoder(stream: av.VideoStream) -> None:
    """Make ``stream``'s decoder refuse frames larger than the stream declares (call before the
    first decode: the options apply when the decoder opens)."""
    context = stream.codec_context
    limit = decoder_pixel_limit(context.width, context.height)
    context.options = {**context.options, "max_pixels": str(limit)}
