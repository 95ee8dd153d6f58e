"""Image-to-video: camera moves over the first image, a flow morph to the last, shots, sound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av

from reelgate.engines.base import ImageToVideoSpec, RenderContext
from reelgate.engines.images import SourceImage
from reelgate.engines.mediaio import AUDIO_RATE, EncoderSettings, MediaWriter, i420_frame
from reelgate.engines.preview import pipeline
from reelgate.engines.preview.frames import (
    FrameSize,
    fit_to_frame,
    load_covering,
    load_rgb,
    new_i420,
    output_size,
    rgb_to_i420,
    warp_affine,
)
from reelgate.engines.preview.mark import PreviewMark
from reelgate.engines.preview.morph import FlowMorph
from reelgate.engines.preview.motion import IDENTITY, MOVE_TARGETS, View, ease, view_along
from reelgate.engines.preview.shots import ShotPlan, plan_shots
from reelgate.engines.preview.sound import synthesize

#: With a last image the flow morph carries the motion, so the camera move is a gentler
#: there-and-back (this share of the move at mid-shot, none at either end).
MOVE_SHARE_WITH_LAST_IMAGE = 0.6


def render_image_to_video(
    spec: ImageToVideoSpec,
    ctx: RenderContext,
    output: Path,
    *,
    long_side: int,
    settings: EncoderSettings,
) -> None:
    fps = settings.fps
    # The frame size is the one asked for, or follows the first image's header; both images
    # are decoded only as large as that frame needs (and cropped to cover it).
    with SourceImage(spec.first_image) as source:
        size = FrameSize(*spec.size) if spec.size else output_size(*source.size, long_side)
        first = rgb_to_i420(fit_to_frame(load_covering(source, size), size))
    morph = None
    if spec.last_image is not None:
        last = rgb_to_i420(fit_to_frame(load_rgb(spec.last_image, size), size))
        morph = FlowMorph(first, last, size)
    shots = plan_shots(spec, fps)
    total = shots[-1].end
    mark = PreviewMark(size) if ctx.watermark else None
    track = None
    if spec.sound:
        cuts = [shot.start / fps for shot in shots[1:]]
        track = synthesize(spec.prompt, total / fps, spec.seed, cuts)

    def frames() -> Iterator[av.VideoFrame]:
        out = new_i420(size)  # reused: each frame is copied into its own VideoFrame
        for index in range(total):
            shot = next(s for s in shots if s.start <= index < s.end)
            view = _view_at(
                shot, index, is_last_shot=shot is shots[-1], ends_on_last=morph is not None
            )
            matrix = view.sampling_matrix(size)
            if morph is not None:
                morph.frame(ease(index / max(total - 1, 1)), matrix, out)
            elif view == IDENTITY:
                out[:] = first
            else:
                warp_affine(first, matrix, out)
            if mark is not None:
                mark.apply(out)
            # The copy happens here, on the frame thread, not on the encoding thread.
            yield i420_frame(out)

    audio_written = 0
    with MediaWriter(output, size.width, size.height, settings, audio=track is not None) as writer:

        def write(frame: av.VideoFrame) -> None:
            nonlocal audio_written
            writer.write_video_frame(frame)
            if track is not None:
                # Interleave: audio up to the end of the frame just written.
                upto = round(writer.frames_written / fps * AUDIO_RATE)
                writer.write_audio(track[:, audio_written:upto])
                audio_written = upto

        pipeline.run(frames(), write, ctx, total)


def _view_at(shot: ShotPlan, index: int, *, is_last_shot: bool, ends_on_last: bool) -> View:
    """The camera for frame ``index``: the shot's framing, then its move so far.

    When the video must end on the last image, the final shot returns to the full frame: its
    framing eases back to the identity and its move goes there and back.
    """
    u = (index - shot.start) / max(shot.frames - 1, 1)
    if not (ends_on_last and is_last_shot):
        return shot.framing.then(view_along(shot.move, u))
    there_and_back = 4 * u * (1 - u) * MOVE_SHARE_WITH_LAST_IMAGE
    move = IDENTITY.toward(MOVE_TARGETS[shot.move], there_and_back)
    return shot.framing.toward(IDENTITY, ease(u)).then(move)
