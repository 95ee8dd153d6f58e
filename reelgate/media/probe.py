"""Decoding enough of an image or video to know its true size, length and soundtrack.

Images are decoded completely (a truncated file must fail here, not in an engine), but only
after their header says the pixel count is sane. Videos are never loaded: container metadata
gives size and duration, and one decoded frame proves the stream is playable. When the
container does not state a duration, the packets' timestamps are read (demuxed, not decoded).

Errors carry no field name; the caller adds it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from reelgate.core.errors import FileProcessingFailed, InvalidParameters, ReelgateError

#: Largest image, in pixels, that is decoded at all (8192 x 8192, about 200 MB as RGB).
#: It stays below Pillow's own bomb threshold (about 89 MP) so that Pillow never has to warn.
MAX_IMAGE_PIXELS = 8192 * 8192

_PILLOW_FORMATS = {"png": "PNG", "jpg": "JPEG"}
#: EXIF orientations that rotate by 90° or 270°, so that the displayed width is the stored height.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), which carry the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class ImageInfo:
    #: As displayed, i.e. after the EXIF orientation is applied.
    width: int
    height: int


@dataclass(frozen=True)
class VideoInfo:
    #: As displayed, i.e. after the stream's display rotation is applied.
    width: int
    height: int
    duration: float
    has_audio: bool


# --- images -------------------------------------------------------------------------------------


def header_size(path: Path, fmt: str) -> tuple[int, int] | None:
    """Width and height from a PNG or JPEG header, read before any decoder touches the file."""
    with path.open("rb") as f:
        if fmt == "png":
            head = f.read(24)
            if len(head) == 24 and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return int(width), int(height)
            return None
        if fmt == "jpg":
            return _jpeg_size(f)
    return None


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
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
            frame = f.read(5)
            if len(frame) != 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return int(width), int(height)
        f.seek(length - 2, 1)
        # The marker loop expects 0xFF next; anything else means a corrupt header.
        if f.read(1) != b"\xff":
            return None
        f.seek(-1, 1)


def inspect_image(path: Path, fmt: str) -> ImageInfo:
    """Decode the whole image (``fmt`` is the sniffed ``png`` or ``jpg``) and return its size.

    Raises ``InvalidParameters`` for more than ``MAX_IMAGE_PIXELS`` (a decompression bomb is
    refused from its header, before decoding) and ``FileProcessingFailed`` when it does not
    decode.
    """
    size = header_size(path, fmt)
    if size is not None:
        _check_pixels(*size)
    try:
        # Only the sniffed format's plugin may open the file: no other decoder sees the bytes.
        with Image.open(path, formats=[_PILLOW_FORMATS[fmt]]) as im:
            width, height = im.size
            _check_pixels(width, height)
            im.load()
            orientation = im.getexif().get(_EXIF_ORIENTATION)
    except ReelgateError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Reached only if the header parse above missed the size; Pillow's guard still holds.
        raise InvalidParameters(f"image has too many pixels to decode safely ({exc})") from exc
    except Exception as exc:
        # Broken files make Pillow raise a zoo of types (OSError, SyntaxError, ValueError,
        # struct.error, EOFError, ...); at this boundary they all mean "does not decode".
        raise FileProcessingFailed(
            f"{fmt} image could not be decoded ({_reason(exc, path)})"
        ) from exc
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(width, height)


def _reason(exc: Exception, path: Path) -> str:
    """A decoder's complaint, without the worker's local path (callers see these messages)."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc).replace(f"'{path}'", "").replace(str(path), "").strip() or type(exc).__name__


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidParameters(
            f"image is {width}x{height} px ({width * height / 1e6:.1f} megapixels); at most "
            f"{MAX_IMAGE_PIXELS / 1e6:.1f} megapixels (8192x8192) are accepted"
        )


# --- videos -------------------------------------------------------------------------------------


def inspect_video(path: Path) -> VideoInfo:
    """Size, duration and audio presence of the first video stream, plus one decoded frame.

    Raises ``InvalidParameters`` for a file without a video stream and ``FileProcessingFailed``
    when the container or the stream does not decode.
    """
    try:
        with av.open(str(path), mode="r", metadata_errors="replace") as container:
            if not container.streams.video:
                raise InvalidParameters("file has no video stream")
            stream = container.streams.video[0]
            width = stream.codec_context.width
            height = stream.codec_context.height
            if width <= 0 or height <= 0:
                raise FileProcessingFailed("video stream has no frame size")
            duration = _stated_duration(container, stream)
            rotation, end = _decode_first_frame(container, stream, scan_all=duration is None)
            has_audio = bool(container.streams.audio)
    except ReelgateError:
        raise
    except Exception as exc:
        # As for images: a hostile or broken file makes FFmpeg and PyAV raise many types.
        raise FileProcessingFailed(
            f"mp4 video could not be decoded ({_reason(exc, path)})"
        ) from exc
    if rotation is None:
        raise FileProcessingFailed("mp4 video has no decodable frames")
    if rotation % 180:
        # Phones store portrait clips as landscape frames plus a display rotation.
        width, height = height, width
    if duration is None:
        duration = end
    if duration is None or duration <= 0:
        raise FileProcessingFailed("mp4 video has no measurable duration")
    return VideoInfo(width, height, duration, has_audio)


def _stated_duration(
    container: av.container.InputContainer, stream: av.VideoStream
) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return None


def _decode_first_frame(
    container: av.container.InputContainer, stream: av.VideoStream, *, scan_all: bool
) -> tuple[int | None, float | None]:
    """Decode until one frame comes out; with ``scan_all``, keep demuxing (without decoding)
    to find where the stream's last packet ends.

    Returns the first frame's display rotation in degrees (None when no frame decoded) and the
    stream's measured length in seconds (None unless ``scan_all``).
    """
    rotation: int | None = None
    first: int | None = stream.start_time
    last_end: int | None = None
    for packet in container.demux(stream):
        if packet.pts is not None:
            first = packet.pts if first is None else min(first, packet.pts)
            end = packet.pts + (packet.duration or 0)
            last_end = end if last_end is None else max(last_end, end)
        if rotation is None:
            for frame in packet.decode():
                rotation = int(frame.rotation)
                break
        elif not scan_all:
            break
    if not scan_all or last_end is None or first is None or stream.time_base is None:
        return rotation, None
    return rotation, float((last_end - first) * Fraction(stream.time_base))
