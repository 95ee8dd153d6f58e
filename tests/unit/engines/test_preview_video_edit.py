"""Video-edit renders of the preview engine, checked on the decoded MP4s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelgate.core.errors import TaskCancelled
from reelgate.engines.mediaio import probe
from reelgate.engines.preview import PreviewEngine
from reelgate.engines.preview.frames import load_rgb
from reelgate.engines.preview.grade import Style, prompt_styles
from tests.unit.engines.preview_support import (
    Inputs,
    audio_packets,
    decode_rgb,
    edit,
    mean_colour,
    render,
)


def test_keeps_size_rate_and_frame_count(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    out = render(engine, edit(inputs), tmp_path)
    source, result = probe(inputs.video), probe(out)
    assert (result.width, result.height) == (source.width, source.height)  # not long_side
    assert result.fps == source.fps
    assert len(decode_rgb(out)) == len(decode_rgb(inputs.video)) == source.frame_count
    assert result.duration == pytest.approx(source.duration)


def test_reference_images_pull_the_colours_toward_their_palette(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    spec = edit(inputs, reference_images=(inputs.reference,), prompt="match the reference")
    source = mean_colour(decode_rgb(inputs.video))
    result = mean_colour(decode_rgb(render(engine, spec, tmp_path)))
    palette = load_rgb(inputs.reference).reshape(-1, 3).mean(axis=0)
    before = np.linalg.norm(source - palette)
    after = np.linalg.norm(result - palette)
    assert after < 0.5 * before


def test_style_words_apply_on_top(engine: PreviewEngine, inputs: Inputs, tmp_path: Path) -> None:
    frames = decode_rgb(render(engine, edit(inputs, prompt="black and white please"), tmp_path))
    spread = np.mean([np.ptp(f.astype(int), axis=2).mean() for f in frames])
    assert spread < 3  # channels (nearly) equal: grey


def test_without_references_or_styles_the_edit_is_still_visible(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    frames = decode_rgb(
        render(engine, edit(inputs, prompt="make it nicer"), tmp_path, watermark=False)
    )
    source = decode_rgb(inputs.video)
    assert (
        np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(frames, source, strict=True)]) > 3
    )


@pytest.mark.parametrize(
    ("prompt", "styles"),
    [
        ("Make it sepia, like an old photo", [Style.SEPIA]),
        ("a cartoon look at night", [Style.CARTOON, Style.NIGHT]),
        ("pencil sketch", [Style.SKETCH]),
        ("cold winter grade", [Style.COLD]),
        ("keep everything", []),
    ],
)
def test_style_words(prompt: str, styles: list[Style]) -> None:
    assert prompt_styles(prompt) == styles


@pytest.mark.parametrize("prompt", ["cartoon", "sketch", "vintage", "night", "sepia warm"])
def test_every_spatial_style_renders(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path, prompt: str
) -> None:
    out = render(engine, edit(inputs, prompt=prompt, keep_original_sound=False), tmp_path)
    assert probe(out).frame_count == probe(inputs.video).frame_count


def test_kept_sound_is_copied_bit_for_bit(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    out = render(engine, edit(inputs, keep_original_sound=True), tmp_path)
    original = audio_packets(inputs.video)
    assert original
    assert audio_packets(out) == original


def test_dropped_sound_means_no_audio_stream(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    assert not probe(render(engine, edit(inputs, keep_original_sound=False), tmp_path)).has_audio


def test_source_without_sound_keeps_none(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    spec = edit(inputs, video=inputs.silent_video, keep_original_sound=True)
    assert not probe(render(engine, spec, tmp_path)).has_audio


def test_same_edit_gives_the_same_bytes(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    spec = edit(inputs, reference_images=(inputs.reference,), prompt="vintage")
    assert (
        render(engine, spec, tmp_path / "a").read_bytes()
        == render(engine, spec, tmp_path / "b").read_bytes()
    )


def test_cancel_and_progress(engine: PreviewEngine, inputs: Inputs, tmp_path: Path) -> None:
    progress: list[float] = []
    render(engine, edit(inputs), tmp_path / "done", report_progress=progress.append)
    assert progress == sorted(progress) and progress[-1] == 1.0

    calls = 0

    def cancelled_soon() -> bool:
        nonlocal calls
        calls += 1
        return calls > 5

    with pytest.raises(TaskCancelled):
        render(engine, edit(inputs), tmp_path / "cancelled", is_cancelled=cancelled_soon)
    assert not (tmp_path / "cancelled" / "preview.mp4").exists()
