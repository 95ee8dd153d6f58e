"""What decoding costs, known before decoding: caps on decoded bytes for images and video
frames, from the headers, and Pillow's own bomb guard kept an input error."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image

from reelgate.config import MediaSettings
from reelgate.core.errors import InvalidParameters
from reelgate.media import MediaFetcher
from reelgate.media.budget import ImageHeader, frame_bytes, read_image_header
from tests import hostile_corpus
from tests.memory import MB, PeakRss
from tests.unit.media.media_support import MediaServer, image_bytes

Videos = Callable[..., bytes]


def _pillow(mode: str, fmt: str = "PNG", **save: object) -> bytes:
    buffer = io.BytesIO()
    image = Image.new(mode, (40, 30))
    if mode == "P" and save.pop("transparent", False):
        save["transparency"] = 0
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "fmt", "channels", "bytes_per_sample"),
    [
        (hostile_corpus.png_of_zeros(40, 30, depth=8, colour=0), "png", 1, 1),
        (hostile_corpus.png_of_zeros(40, 30, depth=16, colour=0), "png", 1, 2),
        (hostile_corpus.png_of_zeros(40, 30, depth=8, colour=4), "png", 2, 1),
        (hostile_corpus.png_of_zeros(40, 30, depth=8, colour=2), "png", 3, 1),
        (hostile_corpus.png_of_zeros(40, 30, depth=16, colour=2), "png", 3, 2),
        (hostile_corpus.png_of_zeros(40, 30, depth=16, colour=6), "png", 4, 2),
        # Palettes and 1-bit images count as the colour they are used as.
        (_pillow("P"), "png", 3, 1),
        (_pillow("P", transparent=True), "png", 4, 1),
        (_pillow("1"), "png", 3, 1),
        (_pillow("L", "JPEG"), "jpg", 1, 1),
        (_pillow("RGB", "JPEG"), "jpg", 3, 1),
        (_pillow("CMYK", "JPEG"), "jpg", 4, 1),
        # A progressive JPEG's decoder keeps 16-bit coefficients for the whole image.
        (_pillow("RGB", "JPEG", progressive=True), "jpg", 3, 2),
    ],
)
def test_headers_tell_the_decoded_size(
    tmp_path: Path, body: bytes, fmt: str, channels: int, bytes_per_sample: int
) -> None:
    path = tmp_path / f"image.{fmt}"
    path.write_bytes(body)
    header = read_image_header(path, fmt)
    assert header == ImageHeader(40, 30, channels, bytes_per_sample)
    assert header.decoded_bytes == 40 * 30 * channels * bytes_per_sample


def test_a_16_bit_png_over_the_byte_cap_is_refused_before_decoding(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    """36 megapixels pass the pixel cap; 288 MB once decoded do not pass the byte cap. The
    280 kB file is refused from its header: nothing near its decoded size is ever allocated."""
    url = server.add("depth.png", hostile_corpus.png_bomb_by_depth())
    with PeakRss() as peak, pytest.raises(InvalidParameters) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert info.value.code == "1007"
    assert info.value.detail == (
        "firstImageUrl: image is 6000x6000 px with 4 channels of 16 bits, 274.7 MB once "
        "decoded; at most 256.0 MB (268435456 bytes) are accepted"
    )
    assert peak.growth < 40 * MB, str(peak)
    assert not any(dest.iterdir())


def test_4k_16_bit_rgba_fits_by_default(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    url = server.add("4k.png", hostile_corpus.png_of_zeros(3840, 2160, depth=16, colour=6))
    media = fetcher.fetch_image(url, "firstImageUrl", dest)
    assert (media.width, media.height) == (3840, 2160)


def test_the_image_cap_is_a_setting(
    server: MediaServer, loopback_client: httpx.Client, dest: Path
) -> None:
    url = server.add("small-cap.png", image_bytes(400, 300))
    settings = MediaSettings(max_decoded_image_bytes=100_000)
    with (
        MediaFetcher(settings, allow_private_networks=True, http_client=loopback_client) as f,
        pytest.raises(InvalidParameters) as info,
    ):
        f.fetch_image(url, "firstImageUrl", dest)
    assert info.value.detail == (
        "firstImageUrl: image is 400x300 px with 3 channels of 8 bits, 0.3 MB once decoded; "
        "at most 0.1 MB (100000 bytes) are accepted"
    )


def test_a_large_jpeg_is_checked_at_an_eighth_of_its_size(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    """Every byte of a 24-megapixel JPEG is decoded and checked, in a 64th of the memory that
    decoding it whole takes (96 MB as Pillow holds RGB)."""
    url = server.add("photo.jpg", hostile_corpus.image(6000, 4000, "JPEG"))
    with PeakRss() as peak:
        media = fetcher.fetch_image(url, "firstImageUrl", dest)
    assert (media.width, media.height) == (6000, 4000)
    assert peak.growth < 30 * MB, str(peak)


def _two_frame_headers(body: bytes, width: int, height: int) -> bytes:
    """A JPEG with a second frame header, declaring another size, right after the first: our
    header read finds the first, Pillow keeps the last."""
    sof = body.index(b"\xff\xc0")
    (length,) = struct.unpack(">H", body[sof + 2 : sof + 4])
    segment = body[sof : sof + 2 + length]
    fake = segment[:5] + struct.pack(">HH", height, width) + segment[9:]
    end = sof + 2 + length
    return body[:end] + fake + body[end:]


def test_a_size_pillow_reads_differently_is_checked_too(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    body = _two_frame_headers(image_bytes(400, 300, "JPEG"), 9000, 8000)
    with Image.open(io.BytesIO(body)) as im:
        assert im.size == (9000, 8000)  # under Pillow's own bomb threshold
    url = server.add("two-sizes.jpg", body)
    with pytest.raises(InvalidParameters, match=r"image is 9000x8000 px \(72.0 megapixels\)"):
        fetcher.fetch_image(url, "firstImageUrl", dest)


def test_pillows_own_bomb_guard_is_an_input_error(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    """Where Pillow's guard fires first (an image whose size only Pillow reads, over its 179
    megapixel threshold), its error is answered 1007, never left to escape."""
    body = _two_frame_headers(image_bytes(400, 300, "JPEG"), 20000, 20000)
    url = server.add("pillow-bomb.jpg", body)
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert "too many pixels to decode safely" in str(info.value)


# --- video frames -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pix_fmt", "per_pixel"),
    [("yuv420p", 3), ("yuva420p", 4), ("yuv420p10le", 6), ("rgb48le", 6), (None, 3)],
)
def test_frames_are_counted_as_decoded_to_rgb(pix_fmt: str | None, per_pixel: int) -> None:
    fmt = av.VideoFormat(pix_fmt) if pix_fmt is not None else None
    assert frame_bytes(64, 48, fmt) == 64 * 48 * per_pixel


def test_video_frames_over_the_byte_cap_are_refused_before_decoding(
    server: MediaServer, dest: Path, videos: Videos, loopback_client: httpx.Client
) -> None:
    url = server.add("frames.mp4", videos(width=64, height=48))
    settings = MediaSettings(max_decoded_frame_bytes=64 * 48 * 3 - 1)
    with (
        MediaFetcher(settings, allow_private_networks=True, http_client=loopback_client) as f,
        pytest.raises(InvalidParameters) as info,
    ):
        f.fetch_video(url, "videoUrl", dest)
    assert info.value.detail == (
        "videoUrl: video frames are 64x48 px, 0.0 MB each once decoded; at most 0.0 MB "
        "(9215 bytes) are accepted"
    )


def test_a_stream_that_grows_mid_way_passes_the_fetch(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, tmp_path: Path
) -> None:
    """Only its first frame is decoded here; the decoders that read the rest refuse the larger
    frames (tests/unit/engines/test_engine_inputs.py)."""
    url = server.add("switching.mp4", hostile_corpus.size_switching_mp4(tmp_path))
    media = fetcher.fetch_video(url, "videoUrl", dest)
    assert (media.width, media.height) == (64, 48)
    assert media.duration == pytest.approx(3.2, abs=0.01)
