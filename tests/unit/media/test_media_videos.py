"""Video fields: MP4 only, a decodable video stream, 3–10 s, side limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import httpx
import pytest

from reelgate.config import MediaSettings
from reelgate.core.errors import FileProcessingFailed, InvalidParameters
from reelgate.media import MediaFetcher
from reelgate.media.probe import _decode_first_frame
from tests.unit.media.media_support import MediaServer, image_bytes

Videos = Callable[..., bytes]


def test_mp4_with_sound(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, videos: Videos
) -> None:
    body = videos(seconds=3.0, audio=True)
    url = server.add("talk.mp4", body, "video/mp4")
    media = fetcher.fetch_video(url, "videoUrl", dest)
    assert (media.kind, media.format, media.size) == ("video", "mp4", len(body))
    assert (media.width, media.height) == (64, 48)
    assert media.duration == pytest.approx(3.0, abs=0.01)
    assert media.has_audio is True
    assert media.path == dest / "videoUrl.mp4"


def test_mp4_without_sound(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, videos: Videos
) -> None:
    url = server.add("silent.mp4", videos(seconds=10.0, width=48, height=80))
    media = fetcher.fetch_video(url, "videoUrl", dest)
    assert media.has_audio is False
    assert media.duration == pytest.approx(10.0, abs=0.01)
    assert (media.width, media.height) == (48, 80)


@pytest.mark.parametrize(("container", "name"), [("mov", "mov"), ("matroska", "mkv")])
def test_other_containers_named_mp4_are_refused(
    fetcher: MediaFetcher,
    server: MediaServer,
    dest: Path,
    videos: Videos,
    container: str,
    name: str,
) -> None:
    url = server.add(f"disguised-{name}.mp4", videos(container=container), "video/mp4")
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_video(url, "videoUrl", dest)
    assert info.value.code == "1007"
    assert info.value.detail == f"videoUrl: video must be MP4, got {name}"


def test_image_in_a_video_field_is_refused(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    url = server.add("still.mp4", image_bytes(400, 400))
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_video(url, "videoUrl", dest)
    assert info.value.detail == "videoUrl: video must be MP4, got png image"


def test_mp4_without_a_video_stream(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, videos: Videos
) -> None:
    url = server.add("sound-only.mp4", videos(video=False, audio=True))
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_video(url, "videoUrl", dest)
    assert info.value.detail == "videoUrl: file has no video stream"


@pytest.mark.parametrize(("seconds", "shown"), [(2.0, "2.00"), (12.0, "12.00")])
def test_duration_outside_3_to_10_seconds(
    fetcher: MediaFetcher,
    server: MediaServer,
    dest: Path,
    videos: Videos,
    seconds: float,
    shown: str,
) -> None:
    url = server.add(f"len-{seconds}.mp4", videos(seconds=seconds))
    with pytest.raises(InvalidParameters) as info:
        fetcher.fetch_video(url, "videoUrl", dest)
    assert info.value.detail == f"videoUrl: video is {shown} s long; it must be between 3 and 10 s"


def test_side_limits(
    server: MediaServer, dest: Path, videos: Videos, loopback_client: httpx.Client
) -> None:
    url = server.add("sides.mp4", videos(width=64, height=48))
    narrow = MediaSettings(min_video_side=100)
    with (
        MediaFetcher(narrow, allow_private_networks=True, http_client=loopback_client) as f,
        pytest.raises(InvalidParameters) as info,
    ):
        f.fetch_video(url, "videoUrl", dest)
    assert info.value.detail == (
        "videoUrl: video is 64x48 px; the shorter side must be at least 100 px"
    )
    small = MediaSettings(max_video_side=60)
    with (
        MediaFetcher(small, allow_private_networks=True, http_client=loopback_client) as f,
        pytest.raises(InvalidParameters) as info,
    ):
        f.fetch_video(url, "videoUrl", dest)
    assert info.value.detail == "videoUrl: video is 64x48 px; the longer side must be at most 60 px"


def test_truncated_mp4_is_undecodable(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, videos: Videos
) -> None:
    body = videos(seconds=4.0)
    url = server.add("cut.mp4", body[: len(body) // 2])
    with pytest.raises(FileProcessingFailed) as info:
        fetcher.fetch_video(url, "videoUrl", dest)
    assert info.value.code == "1013"
    assert info.value.detail is not None
    assert info.value.detail.startswith("videoUrl: mp4 video could not be decoded")
    assert str(dest) not in info.value.detail  # callers never learn the worker's paths
    assert not any(dest.iterdir())


def test_garbage_after_an_ftyp_box_is_undecodable(
    fetcher: MediaFetcher, server: MediaServer, dest: Path
) -> None:
    body = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x13\x37" * 4000
    url = server.add("noise.mp4", body)
    with pytest.raises(FileProcessingFailed):
        fetcher.fetch_video(url, "videoUrl", dest)


def test_fragmented_mp4(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, videos: Videos
) -> None:
    url = server.add("fragmented.mp4", videos(seconds=3.5, fragmented=True))
    media = fetcher.fetch_video(url, "videoUrl", dest)
    assert media.duration == pytest.approx(3.5, abs=0.01)


def test_duration_from_packets_when_the_container_states_none(
    tmp_path: Path, videos: Videos
) -> None:
    """The fallback measures the span of the video packets' timestamps, without decoding them."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(videos(seconds=4.0, fps=10))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rotation, end = _decode_first_frame(container, stream, scan_all=True)
    assert rotation == 0
    assert end == pytest.approx(4.0, abs=0.01)


def test_display_rotation_is_applied_to_the_reported_size(
    fetcher: MediaFetcher, server: MediaServer, dest: Path, videos: Videos
) -> None:
    url = server.add("portrait.mp4", videos(width=64, height=48, rotation=90))
    media = fetcher.fetch_video(url, "videoUrl", dest)
    assert (media.width, media.height) == (48, 64)
