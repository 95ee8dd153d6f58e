"""Splitting an image-to-video render into shots, each with its own framing and camera move.

A single-shot render is one shot of the whole image. A multi-shot render cuts hard between
shots: every shot after the first frames the image differently (closer, off-centre) from the
shot before it, so each boundary is a visible cut and nothing else is.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelgate.core.errors import InvalidParameters
from reelgate.engines.base import ImageToVideoSpec
from reelgate.engines.preview.motion import (
    IDENTITY,
    MOVE_KEYWORDS,
    SEEDED_MOVES,
    Move,
    View,
    choose_move,
)
from reelgate.engines.preview.words import first_match
from reelgate.wire import Shot

#: Framings for the shots after the first: (zoom, centre offset). Each keeps the frame inside
#: the image even after the shot's own camera move.
FRAMINGS = (
    View(zoom=1.8, dx=-0.18, dy=0.05),
    View(zoom=1.5, dx=0.16, dy=-0.06),
    View(zoom=2.1, dx=0.0, dy=0.12),
    View(zoom=1.35, dx=-0.08, dy=-0.1),
)
#: How many shots ``intelligence`` picks when it has no prompts to go by.
MIN_CHOSEN_SHOTS, MAX_CHOSEN_SHOTS = 2, 4


@dataclass(frozen=True)
class ShotPlan:
    #: Index of the shot's first frame in the video.
    start: int
    frames: int
    framing: View
    move: Move
    prompt: str

    @property
    def end(self) -> int:
        return self.start + self.frames


def plan_shots(spec: ImageToVideoSpec, fps: int) -> list[ShotPlan]:
    """The shots of a render, in order, covering exactly ``spec.duration * fps`` frames."""
    if not spec.multi_shot:
        move = choose_move(spec.prompt, spec.seed)
        return [ShotPlan(0, spec.duration * fps, IDENTITY, move, spec.prompt)]
    shots = list(spec.shots)
    if not shots:
        if spec.shot_type != "intelligence":
            raise InvalidParameters("multi-shot customize renders need at least one shot")
        shots = _chosen_shots(spec)
    total = sum(shot.seconds for shot in shots)
    if total != spec.duration or any(shot.seconds < 1 for shot in shots):
        raise InvalidParameters(
            f"shot durations {[shot.seconds for shot in shots]} must be whole seconds (at "
            f"least 1) adding up to the duration, {spec.duration} s"
        )
    plans: list[ShotPlan] = []
    start = 0
    for index, shot in enumerate(shots):
        framing = IDENTITY if index == 0 else _next_framing(spec.seed, index, plans[-1].framing)
        move = _shot_move(shot, index, spec, plans[-1].move if plans else None)
        plans.append(ShotPlan(start, shot.seconds * fps, framing, move, shot.prompt))
        start += shot.seconds * fps
    return plans


def _chosen_shots(spec: ImageToVideoSpec) -> list[Shot]:
    """``intelligence`` without prompts: 2-4 shots of whole seconds, lengths varied by seed."""
    span = MAX_CHOSEN_SHOTS - MIN_CHOSEN_SHOTS + 1
    count = min(MIN_CHOSEN_SHOTS + spec.seed % span, spec.duration)
    seconds = [spec.duration // count] * count
    for n in range(spec.duration % count):
        seconds[(spec.seed // span + n) % count] += 1
    return [Shot(prompt=spec.prompt, seconds=s) for s in seconds]


def _next_framing(seed: int, index: int, previous: View) -> View:
    framing = FRAMINGS[(seed + index) % len(FRAMINGS)]
    if framing == previous:
        framing = FRAMINGS[(seed + index + 1) % len(FRAMINGS)]
    return framing


def _shot_move(shot: Shot, index: int, spec: ImageToVideoSpec, previous: Move | None) -> Move:
    """The shot's own words first; then, for the first shot, the whole prompt's; then the
    seed, avoiding the previous shot's move so consecutive shots move differently."""
    named = first_match(shot.prompt, MOVE_KEYWORDS)
    if named is None and index == 0:
        named = choose_move(spec.prompt, spec.seed)
    if named is not None:
        return named
    move = SEEDED_MOVES[(spec.seed + index) % len(SEEDED_MOVES)]
    if move == previous:
        move = SEEDED_MOVES[(spec.seed + index + 1) % len(SEEDED_MOVES)]
    return move
