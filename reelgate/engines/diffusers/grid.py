"""Each model's grid: the frame counts, frame rate and sizes it can render, and how a request
is cut into passes that fit it.

Wan renders 4k+1 frames at 16 fps with sides a multiple of 16; LTX-2 renders 8k+1 frames at
24 fps with sides a multiple of 32 (64 for its two-stage recipe). The output keeps the model's
frame rate (resampling would invent frames the model never made): a request of ``s`` seconds
gets ``round(s * fps)`` frames, so its duration is the request's within one frame. A clip longer
than one pass, and every shot of a multi-shot request, is a chain of passes in which each pass
starts from the previous pass's last frame; that shared frame is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Grid:
    """What one model family can render."""

    name: str
    fps: int
    #: Frame counts are ``step * k + 1``.
    frame_step: int
    #: Width and height are multiples of this.
    side_multiple: int
    #: The most frames of one pass (the model's trained length).
    max_frames: int

    def frames_for(self, wanted: int) -> int:
        """The smallest count on the grid that holds ``wanted`` frames (at least one step)."""
        steps = max(1, -(-(wanted - 1) // self.frame_step))
        return min(steps * self.frame_step + 1, self.max_frames)

    def size(self, width: int, height: int, long_side: int) -> tuple[int, int]:
        """``width``×``height`` scaled so its long side is about ``long_side``, on the grid."""
        scale = long_side / max(width, height)
        m = self.side_multiple
        return (
            max(m, round(width * scale / m) * m),
            max(m, round(height * scale / m) * m),
        )


def for_model(
    pipeline: str,
    *,
    fps: int | None = None,
    side_multiple: int | None = None,
    max_frames: int | None = None,
) -> Grid:
    """The family's grid, with what one checkpoint changes of it."""
    grid = GRIDS[pipeline]
    return replace(
        grid,
        fps=fps or grid.fps,
        side_multiple=side_multiple or grid.side_multiple,
        max_frames=max_frames or grid.max_frames,
    )


WAN = Grid("wan", fps=16, frame_step=4, side_multiple=16, max_frames=81)
LTX2 = Grid("ltx2", fps=24, frame_step=8, side_multiple=32, max_frames=121)
GRIDS = {"wan-i2v": WAN, "wan-vace": WAN, "ltx2": LTX2}


@dataclass(frozen=True)
class Pass:
    """One model call: ``frames`` rendered (on the grid), of which ``keep`` are new.

    A pass that continues the previous one starts from its last frame, which the output already
    has: it keeps ``keep = frames - 1`` new ones (or fewer, at the end of the clip).
    """

    shot: int
    frames: int
    keep: int
    #: Whether this pass starts from the previous pass's last frame.
    continues: bool


def plan(grid: Grid, shot_seconds: list[float]) -> list[Pass]:
    """The passes for shots of these lengths: ``round(total * fps)`` frames in all."""
    total = round(sum(shot_seconds) * grid.fps)
    bounds: list[int] = []
    elapsed = 0.0
    for seconds in shot_seconds:
        elapsed += seconds
        bounds.append(round(elapsed * grid.fps))
    bounds[-1] = total
    passes: list[Pass] = []
    made = 0
    for shot, end in enumerate(bounds):
        while made < end:
            continues = made > 0
            # A continuing pass's first frame is the previous last frame, already in the output.
            room = grid.max_frames - (1 if continues else 0)
            keep = min(end - made, room)
            frames = grid.frames_for(keep + (1 if continues else 0))
            passes.append(Pass(shot, frames, keep, continues))
            made += keep
    return passes
