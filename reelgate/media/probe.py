"""Decoding enough of an image or video to know its true size, length and soundtrack.

Nothing is decoded before its header says what decoding will cost (``budget``): an image's
pixels and decoded bytes, a video frame's decoded bytes and longest side. Images are then
decoded completely (a truncated file must fail here, not in an engine), JPEGs at 1/8 scale.
Videos are never loaded: container metadata gives size and duration, and one decoded frame
proves the stream is playable; its decoder refuses frames larger than the stream declared.
When the container does not state a duration, the packets' timestamps are read (demuxed, not
decoded).

Errors carry no field name; the caller adds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from reelgate.core.errors import FileProcessingFailed, InvalidParameters, ReelgateError
from reelgate.media.budget import ImageHeader, frame_bytes, open_video, read_image_header

#: Largest image, in pixels, that is decoded at all (8192 x 8192, about 200 MB as RGB).
#: It stays below Pillow's own bomb threshold (about 89 MP) so that Pillow never has to warn.
MAX_IMAGE_PIXELS = 8192 * 8192

_PILLOW_FORMATS = {"png": "PNG", "jpg": "JPEG"}
#: EXIF orientations that rotate by 90° or 270°, so that the displayed width is the stored height.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


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


def inspect_image(path: Path, fmt: str, *, max_decoded_bytes: int) -> ImageInfo:
    """Decode the whole image (``fmt`` is the sniffed ``png`` or ``jpg``) and return its size.

    Raises ``InvalidParameters`` for more than ``MAX_IMAGE_PIXELS`` or ``max_decoded_bytes`` (a
    decompression bomb is refused from its header, before decoding) and ``FileProcessingFailed``
    when it does not decode. A JPEG is decoded at 1/8 scale: every byte of it is still read and
    checked, in a 64th of the memory.
    """
    header = read_image_header(path, fmt)
    if header is not None:
        _check_decoded_size(header, max_decoded_bytes)
    try:
        # Only the sniffed format's plugin may open the file: no other decoder sees the bytes.
        with Image.open(path, formats=[_PILLOW_FORMATS[fmt]]) as im:
            width, height = im.size
            if header is None or (header.width, header.height) != (width, height):
                # Pillow read a header that ours did not find: count what it found.
                header = _pillow_header(im)
                _check_decoded_size(header, max_decoded_bytes)
            if fmt == "jpg":
                im.draft(None, (max(1, width // 8), max(1, height // 8)))
            im.load()
            orientation = im.getexif().get(_EXIF_ORIENTATION)
    except ReelgateError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard, reached only if both header reads above missed the size.
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


def _pillow_header(im: Image.Image) -> ImageHeader:
    """An image's sample layout as Pillow opened it (before decoding), as ``ImageHeader``
    counts it: 16-bit modes at two bytes, palettes and 1-bit as RGB(A)."""
    width, height = im.size
    if im.mode in ("1", "P", "PA"):
        channels = 4 if im.mode == "PA" or "transparency" in im.info else 3
        return ImageHeader(width, height, channels, 1)
    wide = im.mode.startswith("I;16") or getattr(im, "bits", 8) > 8
    return ImageHeader(width, height, len(im.getbands()), 2 if wide else 1)


def _reason(exc: Exception, path: Path) -> str:
    """A decoder's complaint, without the worker's local path (callers see these messages)."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc).replace(f"'{path}'", "").replace(str(path), "").strip() or type(exc).__name__


def _check_decoded_size(header: ImageHeader, max_decoded_bytes: int) -> None:
    width, height = header.width, header.height
    if header.pixels > MAX_IMAGE_PIXELS:
        raise InvalidParameters(
            f"image is {width}x{height} px ({header.pixels / 1e6:.1f} megapixels); at most "
            f"{MAX_IMAGE_PIXELS / 1e6:.1f} megapixels (8192x8192) are accepted"
        )
    if header.decoded_bytes > max_decoded_bytes:
        raise InvalidParameters(
            f"image is {width}x{height} px with {header.describe()}, "
            f"{_mb(header.decoded_bytes)} once decoded; at most {_mb(max_decoded_bytes)} "
            f"({max_decoded_bytes} bytes) are accepted"
        )


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


# --- videos -------------------------------------------------------------------------------------


def inspect_video(path: Path, *, max_frame_bytes: int) -> VideoInfo:
    """Size, duration and audio presence of the first video stream, plus one decoded frame.

    Raises ``InvalidParameters`` for a file without a video stream, and, before anything is
    decoded, for frames over ``max_frame_bytes`` once decoded; ``FileProcessingFailed`` when the
    container or the stream does not decode.
    """

    def check(headers: av.container.InputContainer) -> None:
        if not headers.streams.video:
            raise InvalidParameters("file has no video stream")
        context = headers.streams.video[0].codec_context
        if context.width <= 0 or context.height <= 0:
            raise FileProcessingFailed("video stream has no frame size")
        decoded = frame_bytes(context.width, context.height, context.format)
        if decoded > max_frame_bytes:
            raise InvalidParameters(
                f"video frames are {context.width}x{context.height} px, {_mb(decoded)} each "
                f"once decoded; at most {_mb(max_frame_bytes)} ({max_frame_bytes} bytes) are "
                f"accepted"
            )

    try:
        with open_video(path, check=check, metadata_errors="replace") as container:
            stream = container.streams.video[0]
            width = stream.codec_context.width
            height = stream.codec_context.height
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
