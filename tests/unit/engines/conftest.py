"""Sample inputs for the preview engine tests, written once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgate.engines.preview import PreviewEngine
from reelgate.samples import write_sample_image, write_sample_video
from tests.unit.engines.preview_support import Inputs

#: Small renders keep the suite fast; the engine behaves the same at any size.
TEST_LONG_SIDE = 320


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    folder: Path = tmp_path_factory.mktemp("preview-inputs")
    return Inputs(
        first=write_sample_image(folder / "first.png", width=640, height=360),
        last=write_sample_image(folder / "last.jpg", width=640, height=360, variant="last"),
        reference=write_sample_image(
            folder / "reference.png", width=400, height=300, variant="reference"
        ),
        video=write_sample_video(folder / "source.mp4", seconds=3.0, width=256, height=144),
        silent_video=write_sample_video(
            folder / "silent.mp4", seconds=3.0, width=256, height=144, audio=False
        ),
    )


@pytest.fixture(scope="session")
def engine() -> PreviewEngine:
    return PreviewEngine(long_side=TEST_LONG_SIDE)
