"""Image-to-video renders of the preview engine, checked on the decoded MP4s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelgate.core.errors import InvalidParameters, RenderFailed, TaskCancelled
from reelgate.engines.mediaio import AAC_FRAME_SAMPLES, AUDIO_RATE, probe
from reelgate.engines.preview import PreviewEngine
from reelgate.engines.preview.frames import fit_to_frame, load_rgb, output_size
from reelgate.engines.preview.mark import PreviewMark
from reelgate.engines.preview.motion import Move, choose_move
from tests.unit.engines.preview_support import (
    Inputs,
    audio_samples,
    decode_rgb,
    decoded_frame_count,
    frame_differences,
    i2v,
    psnr,
    render,
    shots,
)


def _expected_first(inputs: Inputs, long_side: int) -> np.ndarray:
    rgb = load_rgb(inputs.first)
    return fit_to_frame(rgb, output_size(rgb.shape[1], rgb.shape[0], long_side))


@pytest.mark.parametrize("duration", range(3, 16))
def test_every_duration_has_24_fps_and_duration_x_24_frames(
    inputs: Inputs, tmp_path: Path, duration: int
) -> None:
    tiny = PreviewEngine(long_side=96)
    out = render(tiny, i2v(inputs, duration=duration), tmp_path)
    info = probe(out)
    assert info.fps == 24
    assert decoded_frame_count(out) == duration * 24 == info.frame_count
    assert (info.width, info.height) == (96, 54)


def test_frame_size_follows_the_first_image_in_the_720p_class(
    inputs: Inputs, tmp_path: Path
) -> None:
    assert output_size(640, 360, 1280) == output_size(1920, 1080, 1280)
    assert (output_size(640, 360, 1280).width, output_size(640, 360, 1280).height) == (1280, 720)
    portrait = output_size(1000, 2500, 1280)
    assert (portrait.width, portrait.height) == (512, 1280)
    odd = output_size(1001, 999, 1280)
    assert odd.width % 2 == 0 and odd.height % 2 == 0


def test_first_frame_is_the_first_image_and_the_camera_moves(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    frames = decode_rgb(render(engine, i2v(inputs, prompt="zoom in on the street"), tmp_path))
    expected = _expected_first(inputs, engine.long_side)
    assert psnr(frames[0], expected) >= 30  # with the preview mark drawn
    assert psnr(frames[-1], expected) < 25  # it moved
    diffs = frame_differences(frames)
    assert diffs.max() < 4 * np.median(diffs) + 1  # smoothly: no cut in a single shot


def test_last_frame_is_the_last_image(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    spec = i2v(inputs, last_image=inputs.last, duration=3)
    frames = decode_rgb(render(engine, spec, tmp_path))
    size = output_size(640, 360, engine.long_side)
    first = fit_to_frame(load_rgb(inputs.first), size)
    last = fit_to_frame(load_rgb(inputs.last), size)
    assert psnr(frames[0], first) >= 30
    assert psnr(frames[-1], last) >= 30
    middle = frames[len(frames) // 2]
    crossfade = (first.astype(np.float64) + last) / 2
    # A flow morph is not the plain average of the two ends.
    assert np.abs(middle - crossfade).mean() > 2


def test_mark_can_be_turned_off(engine: PreviewEngine, inputs: Inputs, tmp_path: Path) -> None:
    marked = decode_rgb(render(engine, i2v(inputs, duration=3), tmp_path / "on"))[0]
    clean = decode_rgb(render(engine, i2v(inputs, duration=3), tmp_path / "off", watermark=False))[
        0
    ]
    expected = _expected_first(inputs, engine.long_side)
    assert psnr(clean, expected) > psnr(marked, expected)
    x, y, w, h = PreviewMark(output_size(640, 360, engine.long_side)).box
    box = (slice(y, y + h), slice(x, x + w))
    assert np.abs(marked[box].astype(int) - clean[box]).mean() > 5
    outside = marked.copy()
    outside[box] = clean[box]
    assert psnr(outside, clean) > 45  # the mark touches nothing else


@pytest.mark.parametrize(
    ("prompt", "move"),
    [
        ("Slowly zoom in on the lanterns", Move.PUSH_IN),
        ("The camera pulls back to reveal the street", Move.PULL_OUT),
        ("pan left across the houses, then zoom in", Move.PAN_LEFT),
        ("camera tilts up to the moon", Move.TILT_UP),
        ("the camera follows a cyclist", Move.FOLLOW),
        ("an orbit around the fountain", Move.ORBIT_RIGHT),
    ],
)
def test_camera_move_comes_from_the_prompt(prompt: str, move: Move) -> None:
    assert choose_move(prompt, seed=0) is move
    assert choose_move(prompt, seed=12345) is move


def test_without_move_words_the_seed_chooses(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    assert {choose_move("a quiet street", seed) for seed in range(20)} >= {
        Move.PUSH_IN,
        Move.PAN_LEFT,
        Move.ORBIT_RIGHT,
    }
    a = render(engine, i2v(inputs, prompt="a quiet street", seed=0), tmp_path / "a")
    b = render(engine, i2v(inputs, prompt="a quiet street", seed=3), tmp_path / "b")
    assert a.read_bytes() != b.read_bytes()


def _cut_positions(frames: list[np.ndarray]) -> list[int]:
    """Indices of frames that start a new shot: frame-difference spikes."""
    diffs = frame_differences(frames)
    threshold = 4 * np.median(diffs) + 4
    return [int(i) + 1 for i in np.flatnonzero(diffs > threshold)]


@pytest.mark.parametrize("last_image", [False, True])
def test_customize_shots_cut_hard_at_each_boundary_and_nowhere_else(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path, last_image: bool
) -> None:
    spec = i2v(
        inputs,
        duration=6,
        multi_shot=True,
        shots=shots(2, 1, 3),
        last_image=inputs.last if last_image else None,
    )
    frames = decode_rgb(render(engine, spec, tmp_path))
    assert len(frames) == 144
    assert _cut_positions(frames) == [48, 72]
    if last_image:
        size = output_size(640, 360, engine.long_side)
        assert psnr(frames[-1], fit_to_frame(load_rgb(inputs.last), size)) >= 30


def test_intelligence_chooses_two_to_four_shots(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    counts = set()
    for seed in (0, 1, 2):
        spec = i2v(inputs, duration=4, multi_shot=True, shot_type="intelligence", seed=seed)
        frames = decode_rgb(render(engine, spec, tmp_path / str(seed)))
        cuts = _cut_positions(frames)
        assert all(c % 24 == 0 for c in cuts)
        counts.add(len(cuts) + 1)
    assert counts == {2, 3, 4}


def test_customize_shots_must_add_up_to_the_duration(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    spec = i2v(inputs, duration=5, multi_shot=True, shots=shots(2, 2))
    with pytest.raises(InvalidParameters):
        render(engine, spec, tmp_path)


@pytest.mark.parametrize(("duration", "prompt"), [(3, "rain on the street"), (7, "a quiet moment")])
def test_sound_is_a_stereo_track_as_long_as_the_video(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path, duration: int, prompt: str
) -> None:
    out = render(engine, i2v(inputs, duration=duration, sound=True, prompt=prompt), tmp_path)
    info = probe(out)
    assert info.has_audio and info.audio_channels == 2
    samples = audio_samples(out)
    assert samples is not None
    assert abs(samples.shape[1] - duration * AUDIO_RATE) <= AAC_FRAME_SAMPLES
    rms = float(np.sqrt(np.mean(samples**2)))
    assert rms > 0.02
    # Not silent anywhere for long: every half second carries sound.
    half = AUDIO_RATE // 2
    for start in range(0, samples.shape[1] - half, half):
        assert np.abs(samples[:, start : start + half]).max() > 0.01


def test_sound_words_change_the_track(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    rain = audio_samples(render(engine, i2v(inputs, sound=True, prompt="rain"), tmp_path / "r"))
    music = audio_samples(render(engine, i2v(inputs, sound=True, prompt="music"), tmp_path / "m"))
    assert rain is not None and music is not None

    # Rain is hiss (energy spread high); music is tones (energy low): compare the share of
    # energy above 2 kHz.
    def high_share(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x[0])) ** 2
        freqs = np.fft.rfftfreq(x.shape[1], 1 / AUDIO_RATE)
        return float(spectrum[freqs > 2000].sum() / spectrum.sum())

    assert high_share(rain) > 0.3 > 0.05 > high_share(music)


def test_no_sound_means_no_audio_stream(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    out = render(engine, i2v(inputs, sound=False), tmp_path)
    assert not probe(out).has_audio
    assert audio_samples(out) is None


def test_same_request_gives_the_same_bytes(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    spec = i2v(inputs, last_image=inputs.last, sound=True, multi_shot=True, shots=shots(1, 2))
    a = render(engine, spec, tmp_path / "a").read_bytes()
    b = render(engine, spec, tmp_path / "b").read_bytes()
    assert a == b


def test_cancel_stops_the_render(engine: PreviewEngine, inputs: Inputs, tmp_path: Path) -> None:
    calls = 0

    def cancelled_after_ten_frames() -> bool:
        nonlocal calls
        calls += 1
        return calls > 10

    progress: list[float] = []
    with pytest.raises(TaskCancelled):
        render(
            engine,
            i2v(inputs, duration=15),
            tmp_path,
            is_cancelled=cancelled_after_ten_frames,
            report_progress=progress.append,
        )
    assert calls == 11
    assert max(progress) < 0.1
    assert not (tmp_path / "preview.mp4").exists()


def test_progress_rises_to_one(engine: PreviewEngine, inputs: Inputs, tmp_path: Path) -> None:
    progress: list[float] = []
    render(engine, i2v(inputs, duration=3), tmp_path, report_progress=progress.append)
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert len(progress) >= 72


def test_unreadable_image_fails_as_render_failed(
    engine: PreviewEngine, inputs: Inputs, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(RenderFailed):
        render(engine, i2v(inputs, first_image=broken), tmp_path / "out")
