"""The procedural sample media that the demo and the tests use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelgate.engines.mediaio import probe
from reelgate.samples import VARIANTS, sample_image, write_sample_image, write_sample_video


def test_images_are_deterministic_and_sized() -> None:
    a = np.asarray(sample_image(320, 200))
    assert a.shape == (200, 320, 3)
    assert np.array_equal(a, np.asarray(sample_image(320, 200)))


def test_variants_differ_in_light() -> None:
    means = [np.asarray(sample_image(160, 90, v)).mean(axis=(0, 1)) for v in VARIANTS]
    first, last, reference = means
    assert first.sum() > last.sum()  # night is darker than dusk
    assert reference[1] > reference[0]  # teal and jade: more green than red
    with pytest.raises(ValueError, match="variant"):
        sample_image(160, 90, "noon")


def test_images_have_texture_for_optical_flow() -> None:
    gray = np.asarray(sample_image(320, 180).convert("L"), dtype=np.float64)
    assert np.abs(np.diff(gray, axis=1)).mean() > 2


@pytest.mark.parametrize(("name", "fmt"), [("a.png", "PNG"), ("b.jpg", "JPEG")])
def test_write_image_picks_format_by_suffix(tmp_path: Path, name: str, fmt: str) -> None:
    path = write_sample_image(tmp_path / name, width=400, height=300)
    with Image.open(path) as image:
        assert image.format == fmt and image.size == (400, 300)


def test_video_with_and_without_sound(tmp_path: Path) -> None:
    with_sound = probe(write_sample_video(tmp_path / "a.mp4", seconds=3.0, width=160, height=96))
    assert (with_sound.width, with_sound.height, with_sound.frame_count) == (160, 96, 72)
    assert with_sound.has_audio and with_sound.audio_channels == 2
    silent = probe(write_sample_video(tmp_path / "b.mp4", seconds=3.0, audio=False))
    assert not silent.has_audio


def test_video_is_deterministic(tmp_path: Path) -> None:
    a = write_sample_video(tmp_path / "a.mp4", seconds=3.0).read_bytes()
    b = write_sample_video(tmp_path / "b.mp4", seconds=3.0).read_bytes()
    assert a == b
