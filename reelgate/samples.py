"""Deterministic procedural sample media: the README demo's inputs and the tests' fixtures.

``sample_image`` paints a lantern-lit street: a sky gradient, two rows of houses with windows
running to a vanishing point, a cobbled road, a string of glowing lanterns and a moon, plus
texture at two scales so optical flow and colour statistics have something to work with.
Variants show the same street in other light:

==============  ================================================================
``first``       dusk: blue-to-orange sky, warm lanterns
``last``        the same street at night, the camera moved a little right and in
``reference``   a teal and jade palette, for colour-transfer examples
==============  ================================================================

Everything is drawn from fixed seeds, so the same arguments give the same pixels (and, for
``write_sample_video``, the same bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from reelgate.engines.mediaio import AUDIO_RATE, EncoderSettings, MediaWriter

RGB = tuple[int, int, int]
VARIANTS = ("first", "last", "reference")


@dataclass(frozen=True)
class _Palette:
    sky_top: RGB
    sky_horizon: RGB
    houses: RGB
    road: RGB
    window_lit: RGB
    lantern: RGB
    moon: RGB
    #: Share of windows with a light on.
    lit_share: float


_PALETTES = {
    "first": _Palette(
        sky_top=(38, 52, 118),
        sky_horizon=(248, 152, 92),
        houses=(84, 56, 70),
        road=(112, 96, 100),
        window_lit=(255, 214, 130),
        lantern=(255, 176, 64),
        moon=(255, 236, 200),
        lit_share=0.35,
    ),
    "last": _Palette(
        sky_top=(8, 10, 38),
        sky_horizon=(96, 52, 112),
        houses=(40, 30, 52),
        road=(58, 50, 66),
        window_lit=(255, 200, 110),
        lantern=(255, 120, 48),
        moon=(230, 236, 255),
        lit_share=0.7,
    ),
    "reference": _Palette(
        sky_top=(14, 96, 110),
        sky_horizon=(168, 236, 206),
        houses=(24, 92, 74),
        road=(70, 128, 118),
        window_lit=(210, 255, 236),
        lantern=(120, 255, 210),
        moon=(236, 255, 250),
        lit_share=0.5,
    ),
}

#: The drawn world is larger than any view of it, so views can move (``last``, the video).
_WORLD_MARGIN = 1.2
#: Where each variant's camera looks, as (centre x, centre y, zoom) in world fractions.
_CAMERAS = {
    "first": (0.46, 0.5, 1.0),
    "last": (0.53, 0.52, 1.07),
    "reference": (0.5, 0.5, 1.0),
}


def sample_image(width: int, height: int, variant: str = "first") -> Image.Image:
    """The sample street scene as an RGB image of the given size."""
    if variant not in _PALETTES:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if width < 16 or height < 16:
        raise ValueError(f"sample images are at least 16x16, got {width}x{height}")
    world_w = math.ceil(width * _WORLD_MARGIN)
    world_h = math.ceil(height * _WORLD_MARGIN)
    world = _paint_world(world_w, world_h, _PALETTES[variant])
    cx, cy, zoom = _CAMERAS[variant]
    return Image.fromarray(_view(world, cx, cy, zoom, width, height))


def write_sample_image(
    path: Path | str,
    *,
    width: int = 1280,
    height: int = 720,
    variant: str = "first",
) -> Path:
    """Write ``sample_image`` as PNG or JPEG, chosen by the file's suffix."""
    path = Path(path)
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise ValueError(f"write_sample_image writes .png or .jpg files, not {path.name!r}")
    options = {"quality": 92} if formats[suffix] == "JPEG" else {}
    sample_image(width, height, variant).save(path, format=formats[suffix], **options)
    return path


def write_sample_video(
    path: Path | str,
    seconds: float = 4.0,
    width: int = 320,
    height: int = 240,
    fps: int = 24,
    audio: bool = True,
) -> Path:
    """Write an H.264 MP4 of the street with the camera panning and a lantern drifting by.

    With ``audio``, the file has a stereo AAC track as long as the video: a soft two-note
    chord (A4 left, E5 right) that swells once per second.
    """
    path = Path(path)
    frame_count = round(seconds * fps)
    if frame_count < 1:
        raise ValueError(f"a sample video needs at least one frame, got {seconds} s at {fps} fps")
    world = _paint_world(
        math.ceil(width * 1.5), math.ceil(height * _WORLD_MARGIN), _PALETTES["first"]
    )
    track = _chord(frame_count / fps) if audio else None
    settings = EncoderSettings(fps=fps, preset="veryfast", crf=23, threads=1)
    with MediaWriter(path, width, height, settings, audio=audio) as writer:
        written = 0
        for index in range(frame_count):
            t = index / max(frame_count - 1, 1)
            frame = _view(world, 0.36 + 0.28 * t, 0.5, 1.0 + 0.05 * t, width, height).copy()
            radius = max(2, height // 20)
            centre = (int(width * (0.1 + 0.8 * t)), int(height * (0.3 + 0.1 * math.sin(6 * t))))
            cv2.circle(frame, centre, radius, (255, 236, 170), -1, lineType=cv2.LINE_AA)
            writer.write_frame(frame)
            if track is not None:
                upto = round((index + 1) / fps * AUDIO_RATE)
                writer.write_audio(track[:, written:upto])
                written = upto
    return path


def _paint_world(width: int, height: int, palette: _Palette) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(20240611)  # one seed for all variants: same street, other light
    horizon = 0.56 * height
    vanish_x = 0.5 * width

    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = np.array(palette.sky_top, np.float32)
    bottom = np.array(palette.sky_horizon, np.float32)
    sky = top + (bottom - top) * np.clip(rows / 0.56, 0, 1) ** 1.4
    canvas = np.broadcast_to(sky, (height, width, 3)).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(canvas))
    draw = ImageDraw.Draw(image)

    moon_r = 0.06 * height
    moon = (0.78 * width, 0.16 * height)
    draw.ellipse(
        (moon[0] - moon_r, moon[1] - moon_r, moon[0] + moon_r, moon[1] + moon_r), fill=palette.moon
    )

    draw.rectangle((0, horizon, width, height), fill=_shaded(palette.road, 0.7))
    road_poly = [(0.08 * width, height), (0.92 * width, height), (vanish_x, horizon)]
    draw.polygon(road_poly, fill=palette.road)
    # Cobble rows: lines across the road, closer together towards the horizon.
    for k in range(1, 18):
        y = horizon + (height - horizon) * (k / 18) ** 1.8
        half = (y - horizon) / (height - horizon) * 0.42 * width
        draw.line([(vanish_x - half, y), (vanish_x + half, y)], fill=_shaded(palette.road, 0.8))

    for side in (-1, 1):
        x_edge = 0.0 if side < 0 else float(width)
        depth_steps = 7
        for k in range(depth_steps):
            near = 1 - k / depth_steps
            far = 1 - (k + 1) / depth_steps
            x0 = vanish_x + (x_edge - vanish_x) * near
            x1 = vanish_x + (x_edge - vanish_x) * far
            roof = rng.uniform(0.1, 0.3) * height
            top0 = horizon - (horizon - roof) * near
            top1 = horizon - (horizon - roof) * far
            base0 = horizon + (height - horizon) * near * 0.9
            base1 = horizon + (height - horizon) * far * 0.9
            fill = _shaded(palette.houses, 1.0 - 0.12 * (k % 2))
            draw.polygon([(x0, top0), (x1, top1), (x1, base1), (x0, base0)], fill=fill)
            for wy in (0.3, 0.55):
                for wx in (0.25, 0.65):
                    lit = rng.uniform() < palette.lit_share
                    colour = palette.window_lit if lit else _shaded(fill, 0.6)
                    xa = x0 + (x1 - x0) * wx
                    xb = x0 + (x1 - x0) * (wx + 0.2)
                    ya = top0 + (base0 - top0) * wy * 0.8
                    yb = ya + (base0 - top0) * 0.12 * near
                    draw.rectangle((min(xa, xb), ya, max(xa, xb), yb), fill=colour)

    lanterns = Image.new("RGB", (width, height))
    glow = ImageDraw.Draw(lanterns)
    string = [
        (width * s, 0.08 * height + 0.12 * height * math.sin(math.pi * s))
        for s in np.linspace(0.0, 1.0, 24)
    ]
    draw.line(string, fill=(30, 24, 24), width=max(1, height // 240))
    for i, (x, y) in enumerate(string[2:-1:3]):
        r = height * (0.018 + 0.006 * (i % 2))
        box = (x - r, y, x + r, y + 2.6 * r)
        draw.ellipse(box, fill=palette.lantern)
        glow.ellipse((x - 2 * r, y - r, x + 2 * r, y + 3.6 * r), fill=palette.lantern)

    pixels = np.asarray(image, dtype=np.float32)
    small = cv2.resize(np.asarray(lanterns), (max(1, width // 4), max(1, height // 4)))
    halo = cv2.GaussianBlur(small, (0, 0), sigmaX=max(1.0, height / 100))
    pixels += 0.6 * cv2.resize(halo, (width, height), interpolation=cv2.INTER_LINEAR)

    # Texture at two scales: soft blotches (plaster, clouds) and fine grain (stone, film).
    coarse = rng.standard_normal((max(2, height // 24), max(2, width // 24))).astype(np.float32)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((height, width)).astype(np.float32)
    pixels += (7.0 * blotches + 4.0 * grain)[:, :, None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _shaded(colour: RGB, factor: float) -> RGB:
    r, g, b = (min(255, int(c * factor)) for c in colour)
    return (r, g, b)


def _view(
    world: npt.NDArray[np.uint8], cx: float, cy: float, zoom: float, width: int, height: int
) -> npt.NDArray[np.uint8]:
    """A width x height view of ``world`` centred at (cx, cy) (fractions), ``zoom`` times closer."""
    world_h, world_w = world.shape[:2]
    scale = min(world_w / width, world_h / height) / _WORLD_MARGIN / zoom
    box_w, box_h = width * scale, height * scale
    x0 = min(max(cx * world_w - box_w / 2, 0.0), world_w - box_w)
    y0 = min(max(cy * world_h - box_h / 2, 0.0), world_h - box_h)
    # An affine map rather than crop-then-resize keeps sub-pixel camera positions exact.
    matrix = np.array([[1 / scale, 0, -x0 / scale], [0, 1 / scale, -y0 / scale]], np.float32)
    view = cv2.warpAffine(world, matrix, (width, height), flags=cv2.INTER_LINEAR)
    return cast(npt.NDArray[np.uint8], view)


def _chord(seconds: float) -> npt.NDArray[np.float32]:
    t = np.arange(round(seconds * AUDIO_RATE), dtype=np.float64) / AUDIO_RATE
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * 1.0 * t) ** 2
    left = 0.25 * swell * np.sin(2 * np.pi * 440.0 * t)
    right = 0.25 * swell * np.sin(2 * np.pi * 659.25 * t)
    return np.stack([left, right]).astype(np.float32)
