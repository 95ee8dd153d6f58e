"""Image fields: JPG/PNG only, decodable, at least 300 px a side, aspect ratio within 2.5:1."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from reelgate.core.errors import FileProcessingFailed, InvalidParameters
from reelgate.media import FetchedMedia, MediaFetcher
from reelgate.media.budget import header_size
from tests.unit.media.media_support import MediaServer, image_bytes


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header and carries almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg_header_only(width: int, height: int) -> bytes:
    sof = b"\x08" + struct.pack(">HH", height, width) + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def test_png_is_fetched_and_described(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    body = image_bytes(400, 300)
    url = server.add("first.png", body, "image/png")
    media = fetcher.fetch_image(url, "firstImageUrl", dest)
    assert media == FetchedMedia(
        path=dest / "firstImageUrl.png",
        field="firstImageUrl",
        kind="image",
        format="png",
        size=len(body),
        width=400,
        height=300,
        duration=None,
        has_audio=False,
    )
    assert media.path.read_bytes() == body
    assert sorted(p.name for p in dest.iterdir()) == ["firstImageUrl.png"]


def test_jpeg_bytes_behind_a_png_name_are_accepted_as_jpg(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    url = server.add("really-a-jpeg.png", image_bytes(320, 480, "JPEG"), "image/png")
    media = fetcher.fetch_image(url, "imageUrls[2]", dest)
    assert (media.format, media.width, media.height) == ("jpg", 320, 480)
    assert media.path == dest / "imageUrls-2.jpg"


@pytest.mark.parametrize(("fmt", "name"), [("WEBP", "webp"), ("GIF", "gif"), ("TIFF", "tiff")])
def test_other_image_formats_are_refused_by_name(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, fmt: str, name: str
) -> None:
    url = server.add(f"pic-{name}.jpg", image_bytes(400, 400, fmt), "image/jpeg")
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert info.value.code == "1007"
    assert info.value.detail == f"firstImageUrl: image must be JPG or PNG, got {name}"
    assert not dest.exists() or not any(dest.iterdir())


def test_video_in_an_image_field_is_refused(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, videos: Callable[..., bytes]
) -> None:
    url = server.add("clip-as-image.png", videos(), "image/png")
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_image(url, "lastImageUrl", dest)
    assert info.value.detail == "lastImageUrl: image must be JPG or PNG, got mp4 video"


def test_html_named_png_is_not_an_image(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    url = server.add("login.png", b"<!DOCTYPE html><html><body>Sign in</body></html>", "image/png")
    with pytest.raises(FileProcessingFailed) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert info.value.code == "1013"
    assert info.value.detail == (
        "firstImageUrl: the file is not an image or video (it looks like an HTML or XML page)"
    )


def test_empty_body_is_not_an_image(fetcher: MediaFetcher, server: MediaServer, dest: Path) -> None:
    url = server.add("empty.png", b"")
    with pytest.raises(FileProcessingFailed, match="the file is empty"):
        fetcher.fetch_image(url, "firstImageUrl", dest)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_fails_to_decode(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, fmt: str
) -> None:
    body = image_bytes(400, 400, fmt, noise=True)
    url = server.add(f"truncated.{fmt}", body[: len(body) // 2])
    with pytest.raises(FileProcessingFailed) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert info.value.detail is not None
    assert info.value.detail.startswith("firstImageUrl: ")
    assert "could not be decoded" in info.value.detail
    assert not any(dest.iterdir())


def test_shorter_side_below_300_px(fetcher: MediaFetcher, server: MediaServer, dest: Path) -> None:
    url = server.add("small.png", image_bytes(200, 150))
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert info.value.detail == (
        "firstImageUrl: image is 200x150 px; the shorter side must be at least 300 px"
    )


@pytest.mark.parametrize(("width", "height"), [(300, 300), (750, 300), (300, 750)])
def test_limits_are_inclusive(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, width: int, height: int
) -> None:
    url = server.add(f"edge-{width}x{height}.png", image_bytes(width, height))
    assert fetcher.fetch_image(url, "firstImageUrl", dest).width == width


@pytest.mark.parametrize(("width", "height"), [(1000, 300), (300, 760)])
def test_aspect_ratio_beyond_2_5(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, width: int, height: int
) -> None:
    url = server.add(f"wide-{width}x{height}.png", image_bytes(width, height))
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_image(url, "lastImageUrl", dest)
    assert info.value.detail is not None
    assert info.value.detail.startswith(
        f"lastImageUrl: image is {width}x{height} px (aspect ratio "
    )
    assert info.value.detail.endswith("the aspect ratio must be between 1:2.5 and 2.5:1")


def test_exif_rotation_is_applied_to_the_reported_size(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    url = server.add("rotated.jpg", image_bytes(400, 320, "JPEG", exif=exif.tobytes()))
    media = fetcher.fetch_image(url, "firstImageUrl", dest)
    assert (media.width, media.height) == (320, 400)


@pytest.mark.parametrize(
    ("body", "name"),
    [(_png_header_only(20000, 20000), "bomb.png"), (_jpeg_header_only(10000, 9000), "bomb.jpg")],
)
def test_decompression_bombs_are_refused_from_the_header(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, body: bytes, name: str
) -> None:
    url = server.add(name, body)
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_image(url, "firstImageUrl", dest)
    assert "megapixels" in str(info.value)
    assert "at most 67.1 megapixels (8192x8192)" in str(info.value)


def test_header_size_matches_pillow_for_real_files(tmp_path: Path) -> None:
    cases = {
        "plain.jpg": image_bytes(333, 444, "JPEG"),
        "progressive.jpg": image_bytes(640, 360, "JPEG", progressive=True),
        "exif.jpg": image_bytes(512, 300, "JPEG", exif=Image.Exif().tobytes()),
        "plain.png": image_bytes(301, 302),
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_bytes(body)
        with Image.open(io.BytesIO(body)) as im:
            assert header_size(path, name.rsplit(".", 1)[1]) == im.size
