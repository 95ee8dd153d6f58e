"""Camera moves over a still frame: push-in, pull-out, pans, tilts, orbit-like drift, follow.

A move is where the virtual camera ends up relative to where it started; the camera glides
there with an ease-in/ease-out curve. Every move starts at the identity (the unchanged frame),
so a render's first frame is its first image. Moves that end closer than the full frame
(zoom > 1) never show anything outside the image; a pull-out reveals a mirrored border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from reelgate.engines.preview.frames import F32, FrameSize
from reelgate.engines.preview.words import first_match


class Move(StrEnum):
    PUSH_IN = "push-in"
    PULL_OUT = "pull-out"
    PAN_LEFT = "pan-left"
    PAN_RIGHT = "pan-right"
    TILT_UP = "tilt-up"
    TILT_DOWN = "tilt-down"
    ORBIT_LEFT = "orbit-left"
    ORBIT_RIGHT = "orbit-right"
    FOLLOW = "follow"
    STATIC = "static"


@dataclass(frozen=True)
class View:
    """Where the camera looks: ``zoom`` (>1 is closer), the centre's offset as fractions of the
    frame's width and height, and a roll ``angle`` in degrees."""

    zoom: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    angle: float = 0.0

    def then(self, other: View) -> View:
        """This view with ``other`` applied inside it (offsets shrink with this view's zoom)."""
        return View(
            zoom=self.zoom * other.zoom,
            dx=self.dx + other.dx / self.zoom,
            dy=self.dy + other.dy / self.zoom,
            angle=self.angle + other.angle,
        )

    def toward(self, other: View, amount: float) -> View:
        """The view ``amount`` (0..1) of the way to ``other`` (exactly either end at 0 and 1)."""
        if amount <= 0:
            return self
        if amount >= 1:
            return other
        return View(
            zoom=self.zoom + (other.zoom - self.zoom) * amount,
            dx=self.dx + (other.dx - self.dx) * amount,
            dy=self.dy + (other.dy - self.dy) * amount,
            angle=self.angle + (other.angle - self.angle) * amount,
        )

    def sampling_matrix(self, size: FrameSize) -> F32:
        """The 2x3 matrix mapping an output pixel to the source position it shows."""
        cx, cy = (size.width - 1) / 2, (size.height - 1) / 2
        theta = math.radians(self.angle)
        cos, sin = math.cos(theta) / self.zoom, math.sin(theta) / self.zoom
        tx = cx + self.dx * size.width - (cos * cx - sin * cy)
        ty = cy + self.dy * size.height - (sin * cx + cos * cy)
        return np.array([[cos, -sin, tx], [sin, cos, ty]], dtype=np.float32)


IDENTITY = View()

#: Where each move ends. Pans and tilts also push in enough to keep the image edge out of view.
MOVE_TARGETS: dict[Move, View] = {
    Move.PUSH_IN: View(zoom=1.3),
    Move.PULL_OUT: View(zoom=0.84),
    Move.PAN_LEFT: View(zoom=1.2, dx=-0.075),
    Move.PAN_RIGHT: View(zoom=1.2, dx=0.075),
    Move.TILT_UP: View(zoom=1.2, dy=-0.075),
    Move.TILT_DOWN: View(zoom=1.2, dy=0.075),
    Move.ORBIT_LEFT: View(zoom=1.28, dx=-0.05, angle=-4.0),
    Move.ORBIT_RIGHT: View(zoom=1.28, dx=0.05, angle=4.0),
    Move.FOLLOW: View(zoom=1.25, dx=0.06, dy=0.015),
    Move.STATIC: View(zoom=1.03),
}

#: Prompt phrases and the move they ask for; the phrase that comes first in the prompt wins.
MOVE_KEYWORDS: dict[str, Move] = {
    **dict.fromkeys(
        (
            "zoom in",
            "zooms in",
            "zooming in",
            "push in",
            "pushes in",
            "dolly in",
            "close up",
            "closer",
            "approach",
            "approaches",
            "zoom",
        ),
        Move.PUSH_IN,
    ),
    **dict.fromkeys(
        (
            "zoom out",
            "zooms out",
            "zooming out",
            "pull out",
            "pulls out",
            "pull back",
            "pulls back",
            "dolly out",
            "reveal",
            "reveals",
            "moves away",
        ),
        Move.PULL_OUT,
    ),
    **dict.fromkeys(
        ("pan left", "pans left", "panning left", "to the left", "moves left"), Move.PAN_LEFT
    ),
    **dict.fromkeys(
        (
            "pan right",
            "pans right",
            "panning right",
            "to the right",
            "moves right",
            "pan",
            "pans",
            "panning",
        ),
        Move.PAN_RIGHT,
    ),
    **dict.fromkeys(
        ("tilt up", "tilts up", "look up", "looks up", "crane up", "rises", "rising", "tilt"),
        Move.TILT_UP,
    ),
    **dict.fromkeys(
        ("tilt down", "tilts down", "look down", "looks down", "crane down", "descends"),
        Move.TILT_DOWN,
    ),
    **dict.fromkeys(
        ("orbit left", "counterclockwise", "counter clockwise", "circles left"), Move.ORBIT_LEFT
    ),
    **dict.fromkeys(
        (
            "orbit",
            "orbits",
            "orbiting",
            "orbit right",
            "circles",
            "circling",
            "around",
            "arc shot",
            "clockwise",
            "360",
        ),
        Move.ORBIT_RIGHT,
    ),
    **dict.fromkeys(
        ("follow", "follows", "following", "tracking", "tracks", "track", "chase", "chases"),
        Move.FOLLOW,
    ),
    **dict.fromkeys(
        ("static", "still camera", "locked off", "tripod", "fixed camera"), Move.STATIC
    ),
}

#: The moves a seed chooses from when the prompt names none (all but ``STATIC``).
SEEDED_MOVES = tuple(move for move in Move if move is not Move.STATIC)


def choose_move(prompt: str, seed: int) -> Move:
    """The move the prompt asks for, or one chosen by the seed when it asks for none."""
    return first_match(prompt, MOVE_KEYWORDS) or SEEDED_MOVES[seed % len(SEEDED_MOVES)]


def ease(t: float) -> float:
    """Smoothstep: starts and ends at rest."""
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def view_along(move: Move, t: float) -> View:
    """The camera ``t`` (0..1) of the way through ``move``."""
    return IDENTITY.toward(MOVE_TARGETS[move], ease(t))
