"""Helpers for the preview engine tests: building specs, decoding outputs, measuring them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from reelgate.engines.base import ImageToVideoSpec, RenderContext, VideoEditSpec
from reelgate.engines.mediaio import iter_rgb_frames
from reelgate.engines.preview import PreviewEngine
from reelgate.wire import Shot

RGB = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Inputs:
    first: Path
    last: Path
    reference: Path
    video: Path
    silent_video: Path


def i2v(inputs: Inputs, **changes: Any) -> ImageToVideoSpec:
    spec = ImageToVideoSpec(
        prompt="a lantern street at dusk",
        first_image=inputs.first,
        last_image=None,
        duration=3,
        sound=False,
        multi_shot=False,
        shot_type="customize",
        shots=(),
        seed=11,
    )
    return replace(spec, **changes)


def shots(*seconds: int, prompt: str = "a lantern street") -> tuple[Shot, ...]:
    return tuple(Shot(prompt=prompt, seconds=s) for s in seconds)


def edit(inputs: Inputs, **changes: Any) -> VideoEditSpec:
    spec = VideoEditSpec(
        prompt="make it look like the reference",
        video=inputs.video,
        reference_images=(),
        keep_original_sound=True,
        seed=5,
    )
    return replace(spec, **changes)


def render(engine: PreviewEngine, spec: Any, scratch: Path, **ctx: Any) -> Path:
    scratch.mkdir(parents=True, exist_ok=True)
    result = engine.render(spec, RenderContext(scratch_dir=scratch, **ctx))
    assert len(result.outputs) == 1
    assert result.outputs[0].output_type == "mp4"
    return result.outputs[0].path


def decode_rgb(path: Path) -> list[RGB]:
    return list(iter_rgb_frames(path))


def decoded_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def psnr(a: RGB, b: RGB) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def frame_differences(frames: list[RGB]) -> npt.NDArray[np.float64]:
    """Mean absolute difference between each frame and the next."""
    stack = [f.astype(np.int16) for f in frames]
    return np.array([np.abs(b - a).mean() for a, b in itertools.pairwise(stack)])


def audio_samples(path: Path) -> npt.NDArray[np.float32] | None:
    """The decoded audio as (channels, samples), or None without an audio stream."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        blocks = [f.to_ndarray() for f in container.decode(audio=0)]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def mean_colour(frames: list[RGB]) -> npt.NDArray[np.float64]:
    return np.asarray(
        np.mean([f.reshape(-1, 3).mean(axis=0) for f in frames], axis=0), dtype=np.float64
    )
