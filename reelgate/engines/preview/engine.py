"""The ``preview`` engine: classical, deterministic media processing on any CPU.

It is a preview renderer, not a generative model: it moves a camera over the first image,
morphs to the last image along optical flow, cuts between framings for multi-shot requests,
synthesises sound from the prompt's words, and grades edits toward reference images and
style words. Every request parameter changes the output visibly, the same request always
gives the same bytes, and renders carry a small "preview" mark unless it is turned off.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2

from reelgate.core.catalogue import Family
from reelgate.core.errors import ReelgateError, RenderFailed
from reelgate.engines.base import (
    Capabilities,
    ImageToVideoSpec,
    RenderContext,
    RenderOutput,
    RenderResult,
    RenderSpec,
)
from reelgate.engines.mediaio import EncoderSettings
from reelgate.engines.preview.edit import render_video_edit
from reelgate.engines.preview.i2v import render_image_to_video

#: The 720p class: the long side of image-to-video renders.
DEFAULT_LONG_SIDE = 1280
FPS = 24
#: Chosen by benchmarks/preview_bench.py; see docs/benchmarks.md.
DEFAULT_ENCODER = EncoderSettings(fps=FPS, preset="veryfast", crf=20, threads=2)


class PreviewEngine:
    """Renders image-to-video and video-edit requests without a GPU or model weights.

    ``long_side`` sets the long side of image-to-video output (even, at least 64); tests and
    quick previews use a small value. Edits always keep their source's size.
    """

    name = "preview"
    capabilities = Capabilities(
        families=frozenset({Family.IMAGE_TO_VIDEO, Family.VIDEO_EDIT}),
        first_frame=True,
        last_frame=True,
        reference_images=4,
        audio=True,
        max_seconds=15,
        fps=FPS,
    )

    def __init__(
        self, long_side: int = DEFAULT_LONG_SIDE, encoder: EncoderSettings = DEFAULT_ENCODER
    ) -> None:
        if long_side < 64 or long_side % 2:
            raise ValueError(f"long_side must be an even number of pixels >= 64, got {long_side}")
        if encoder.fps != FPS:
            raise ValueError(f"the preview engine renders at {FPS} fps, not {encoder.fps}")
        self.long_side = long_side
        self.encoder = encoder
        _share_cores_with_the_encoder(encoder)

    def ready(self) -> tuple[bool, str]:
        return (
            True,
            f"preview renderer ({self.long_side}px long side, libx264 {self.encoder.preset})",
        )

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult:
        output = ctx.scratch_dir / "preview.mp4"
        try:
            ctx.raise_if_cancelled()
            ctx.report_progress(0.0)
            if isinstance(spec, ImageToVideoSpec):
                render_image_to_video(
                    spec, ctx, output, long_side=self.long_side, settings=self.encoder
                )
            else:
                render_video_edit(spec, ctx, output, settings=self.encoder)
        except ReelgateError:
            _discard(output)
            raise
        except (av.FFmpegError, cv2.error, OSError, ValueError) as exc:
            _discard(output)
            raise RenderFailed(f"preview render failed: {exc}") from exc
        except BaseException:
            _discard(output)
            raise
        ctx.report_progress(1.0)
        return RenderResult(outputs=(RenderOutput(path=output, output_type="mp4"),))


def _share_cores_with_the_encoder(encoder: EncoderSettings) -> None:
    """Keep OpenCV to one thread where x264's threads alone can keep every core busy.

    The frame work (warps, flow, grading) runs on its own thread beside the encoder's. With
    OpenCV's default pool on a 2-core host, a morph frame cost 15 ms of CPU instead of 10 ms,
    taken from x264: a 5 s 720p image-to-video took 3 % more CPU and wall time on a quiet host,
    7 % more with other work on it. With cores to spare, OpenCV keeps its pool. The setting
    is OpenCV's, for the whole process: the colour conversion of other engines' frames before
    encoding follows it too, for the same reason.
    """
    if _usable_cores() <= encoder.threads:
        cv2.setNumThreads(1)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
