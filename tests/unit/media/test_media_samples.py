"""reelgate's own sample media (``reelgate.samples``) passes the checks it is meant to pass."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reelgate.config import MediaSettings
from reelgate.media import MediaFetcher
from reelgate.samples import write_sample_image, write_sample_video


def _fetcher(settings: MediaSettings, stored: Path, client: httpx.Client) -> MediaFetcher:
    """Serves ``stored`` as if it were an uploaded file behind one of reelgate's own links."""
    return MediaFetcher(
        settings,
        allow_private_networks=False,
        own_file=lambda url, dest: stored,
        http_client=client,
    )


@pytest.mark.parametrize(("name", "fmt"), [("first.png", "png"), ("last.jpg", "jpg")])
def test_sample_images(
    settings: MediaSettings, tripwire_client: httpx.Client, tmp_path: Path, name: str, fmt: str
) -> None:
    stored = write_sample_image(tmp_path / name, width=640, height=360)
    with _fetcher(settings, stored, tripwire_client) as f:
        media = f.fetch_image("https://reelgate.example/u/sample", "firstImageUrl", tmp_path)
    assert (media.format, media.width, media.height) == (fmt, 640, 360)


def test_sample_video(
    settings: MediaSettings, tripwire_client: httpx.Client, tmp_path: Path
) -> None:
    stored = write_sample_video(tmp_path / "clip.mp4", seconds=3.0, width=160, height=120, fps=10)
    with _fetcher(settings, stored, tripwire_client) as f:
        media = f.fetch_video("https://reelgate.example/u/clip", "videoUrl", tmp_path)
    assert (media.format, media.width, media.height, media.has_audio) == ("mp4", 160, 120, True)
    assert media.duration == pytest.approx(3.0, abs=0.05)
