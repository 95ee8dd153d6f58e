"""Colour grading for video edits: reference-palette transfer plus prompt-keyed styles.

Reference images drive a Reinhard transfer (Reinhard et al., "Color Transfer between Images",
2001): per channel of CIELAB, the source's mean and spread are moved to the references'. Style
words then reshape the channels on top (black and white, sepia, night, …). Every one of these
is a per-channel curve in 8-bit LAB, so the whole grade folds into one lookup table applied
with ``cv2.LUT``; only a few styles add a spatial step (vignette, cartoon edges, pencil).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.engines.preview.frames import U8, FrameSize, planes
from reelgate.engines.preview.words import contains_any

F64 = npt.NDArray[np.float64]
#: Reference and source statistics are measured on copies this small (long side, pixels).
STATS_LONG_SIDE = 256
#: Bounds on the transfer's per-channel gain, so a flat source is not blown up into noise.
MIN_GAIN, MAX_GAIN = 0.4, 2.5


class Style(StrEnum):
    BLACK_AND_WHITE = "black and white"
    SEPIA = "sepia"
    VINTAGE = "vintage"
    CARTOON = "cartoon"
    SKETCH = "sketch"
    NIGHT = "night"
    WARM = "warm"
    COLD = "cold"
    VIVID = "vivid"
    MUTED = "muted"
    DRAMATIC = "dramatic"
    GOLDEN = "golden"


STYLE_WORDS: dict[Style, tuple[str, ...]] = {
    Style.BLACK_AND_WHITE: (
        "black and white",
        "black white",
        "b w",
        "monochrome",
        "grayscale",
        "greyscale",
        "noir",
    ),
    Style.SEPIA: ("sepia", "old photo", "daguerreotype"),
    Style.VINTAGE: (
        "vintage",
        "retro",
        "old film",
        "film grain",
        "faded",
        "70s",
        "1970s",
        "analog",
    ),
    Style.CARTOON: ("cartoon", "anime", "comic", "cel shaded", "animated", "toon"),
    Style.SKETCH: ("sketch", "pencil", "drawing", "drawn", "charcoal", "line art"),
    Style.NIGHT: ("night", "nighttime", "midnight", "moonlight", "moonlit", "day for night"),
    Style.WARM: ("warm", "warmer", "cozy", "autumn"),
    Style.COLD: ("cold", "cool", "cooler", "winter", "icy", "blue tint"),
    Style.VIVID: ("vivid", "saturated", "colorful", "colourful", "vibrant", "neon"),
    Style.MUTED: ("muted", "desaturated", "pastel", "washed out"),
    Style.DRAMATIC: ("dramatic", "high contrast", "cinematic", "moody"),
    Style.GOLDEN: ("golden", "golden hour", "sunset", "sunrise"),
}


def prompt_styles(prompt: str) -> list[Style]:
    return [style for style, words in STYLE_WORDS.items() if contains_any(prompt, words)]


@dataclass(frozen=True)
class LabStats:
    """Per-channel mean and standard deviation in 8-bit LAB (L, a, b)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def lab_stats(images: Iterable[U8]) -> LabStats:
    """Pooled LAB statistics of RGB images (each measured on a small copy)."""
    pixels = []
    for rgb in images:
        height, width = rgb.shape[:2]
        scale = min(1.0, STATS_LONG_SIDE / max(height, width))
        small = cv2.resize(
            rgb,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        pixels.append(cv2.cvtColor(small, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64))
    if not pixels:
        raise ValueError("lab_stats needs at least one image")
    every = np.concatenate(pixels)
    mean, std = every.mean(axis=0), every.std(axis=0)
    return LabStats(
        (float(mean[0]), float(mean[1]), float(mean[2])),
        (float(std[0]), float(std[1]), float(std[2])),
    )


Curves = tuple[F64, F64, F64]


def _contrast(x: F64, amount: float, pivot: float = 128.0) -> F64:
    return pivot + (x - pivot) * amount


def _chroma(
    a: F64, b: F64, amount: float, shift_a: float = 0.0, shift_b: float = 0.0
) -> tuple[F64, F64]:
    return 128 + (a - 128) * amount + shift_a, 128 + (b - 128) * amount + shift_b


def _black_and_white(lum: F64, a: F64, b: F64) -> Curves:
    return _contrast(lum, 1.1), a * 0 + 128, b * 0 + 128


def _sepia(lum: F64, a: F64, b: F64) -> Curves:
    return _contrast(lum, 1.05), a * 0 + 136, b * 0 + 152


def _vintage(lum: F64, a: F64, b: F64) -> Curves:
    return (24 + lum * 0.82, *_chroma(a, b, 0.7, 4, 12))


def _cartoon(lum: F64, a: F64, b: F64) -> Curves:
    levels = 6
    step = 255 / (levels - 1)
    return (np.round(lum / step) * step, *_chroma(a, b, 1.35))


def _sketch(lum: F64, a: F64, b: F64) -> Curves:
    return lum, a * 0 + 128, b * 0 + 128


def _night(lum: F64, a: F64, b: F64) -> Curves:
    return (lum * 0.55, *_chroma(a, b, 0.6, -2, -18))


def _warm(lum: F64, a: F64, b: F64) -> Curves:
    return (lum, *_chroma(a, b, 1.0, 5, 16))


def _cold(lum: F64, a: F64, b: F64) -> Curves:
    return (lum, *_chroma(a, b, 1.0, -3, -18))


def _vivid(lum: F64, a: F64, b: F64) -> Curves:
    return (_contrast(lum, 1.05), *_chroma(a, b, 1.45))


def _muted(lum: F64, a: F64, b: F64) -> Curves:
    return (_contrast(lum, 0.9), *_chroma(a, b, 0.5))


def _dramatic(lum: F64, a: F64, b: F64) -> Curves:
    return (_contrast(lum, 1.35), *_chroma(a, b, 1.1))


def _golden(lum: F64, a: F64, b: F64) -> Curves:
    return (lum * 1.05, *_chroma(a, b, 1.1, 10, 26))


def _mild(lum: F64, a: F64, b: F64) -> Curves:
    """What an edit with neither references nor style words gets: a gentle, visible grade."""
    return (_contrast(lum, 1.1), *_chroma(a, b, 1.2, 2, 6))


_CURVES: dict[Style, Callable[[F64, F64, F64], Curves]] = {
    Style.BLACK_AND_WHITE: _black_and_white,
    Style.SEPIA: _sepia,
    Style.VINTAGE: _vintage,
    Style.CARTOON: _cartoon,
    Style.SKETCH: _sketch,
    Style.NIGHT: _night,
    Style.WARM: _warm,
    Style.COLD: _cold,
    Style.VIVID: _vivid,
    Style.MUTED: _muted,
    Style.DRAMATIC: _dramatic,
    Style.GOLDEN: _golden,
}
_VIGNETTED = {Style.VINTAGE, Style.DRAMATIC, Style.NIGHT}


class Grade:
    """The grade for one edit: a LAB lookup table and the spatial steps its styles need."""

    def __init__(
        self,
        prompt: str,
        size: FrameSize,
        source: LabStats,
        reference: LabStats | None = None,
    ) -> None:
        self.styles = prompt_styles(prompt)
        x = np.arange(256, dtype=np.float64)
        channels = [x.copy(), x.copy(), x.copy()]
        if reference is not None:
            for c in range(3):
                gain = reference.std[c] / max(source.std[c], 1e-6)
                gain = min(max(gain, MIN_GAIN), MAX_GAIN)
                channels[c] = (x - source.mean[c]) * gain + reference.mean[c]
        elif not self.styles:
            channels = list(_mild(*channels))
        for style in self.styles:
            channels = list(_CURVES[style](*channels))
        self.lut = np.clip(np.round(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)
        self.lut = self.lut.reshape(256, 1, 3)
        # Styles work at chroma resolution (see ``apply_i420``): half the frame size.
        self._vignette = _vignette(size.chroma) if _VIGNETTED & set(self.styles) else None
        self._sketch_sigma = max(size.width, size.height) / 320

    def apply_i420(self, i420: U8) -> U8:
        """The graded frame (a new I420 array).

        Colour work runs at chroma resolution: the half-size picture is graded in LAB, its
        new chroma planes are the output's, and its change in luma is upsampled onto the
        full-size luma. Grades are smooth functions of colour, so this matches a full-size
        grade away from sharp colour edges, at a quarter of the cost.
        """
        luma, u, v = planes(i420)
        half = (u.shape[1], u.shape[0])
        luma_half = cv2.resize(luma, half, interpolation=cv2.INTER_AREA)
        rgb_half = cv2.transform(cv2.merge([luma_half, u, v]), _YUV_TO_RGB)
        graded = cv2.transform(self._grade_rgb(cast(U8, rgb_half)), _RGB_TO_YUV)
        new_luma_half, new_u, new_v = cv2.split(graded)
        change = cv2.subtract(new_luma_half, luma_half, dtype=cv2.CV_16S)
        change_full = cv2.resize(
            change, (luma.shape[1], luma.shape[0]), interpolation=cv2.INTER_LINEAR
        )
        out = np.empty_like(i420)
        out_luma, out_u, out_v = planes(out)
        cv2.add(luma, change_full, dst=out_luma, dtype=cv2.CV_8U)
        out_u[:] = new_u
        out_v[:] = new_v
        return out

    def _grade_rgb(self, rgb: U8) -> U8:
        """The graded picture (a new RGB array at chroma resolution)."""
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        cv2.LUT(lab, self.lut, dst=lab)
        if self._vignette is not None or {Style.CARTOON, Style.SKETCH} & set(self.styles):
            lightness = cast(U8, cv2.extractChannel(lab, 0))
            if Style.SKETCH in self.styles:
                lightness = self._pencil(lightness)
            if Style.CARTOON in self.styles:
                lightness = _inked(lightness)
            if self._vignette is not None:
                lightness = cast(U8, cv2.multiply(lightness, self._vignette, scale=1 / 255))
            cv2.insertChannel(lightness, lab, 0)
        return cast(U8, cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))

    def _pencil(self, lightness: U8) -> U8:
        """Colour-dodge of the lightness by its blurred negative: a pencil-sketch look."""
        negative = cv2.bitwise_not(lightness)
        blurred = cv2.GaussianBlur(negative, (0, 0), self._sketch_sigma)
        return cast(U8, cv2.divide(lightness, cv2.bitwise_not(blurred), scale=256))


# BT.601 limited range (what the encoder's yuv420p means here), as 3x4 matrices for
# cv2.transform on (Y, U, V) and (R, G, B) pixels.
_RGB_TO_YUV = (
    np.array(
        [
            [65.481, 128.553, 24.966, 16 * 255],
            [-37.797, -74.203, 112.0, 128 * 255],
            [112.0, -93.786, -18.214, 128 * 255],
        ]
    )
    / 255
)
_YUV_TO_RGB = np.array(
    [
        [1.164383, 0.0, 1.596027, 0.0],
        [1.164383, -0.391762, -0.812968, 0.0],
        [1.164383, 2.017232, 0.0, 0.0],
    ]
)
_YUV_TO_RGB[:, 3] = -_YUV_TO_RGB[:, :3] @ np.array([16.0, 128.0, 128.0])


def _inked(lightness: U8) -> U8:
    """Dark outlines along strong edges, as in cel animation."""
    edges = cv2.Canny(lightness, 60, 150)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    return cast(U8, cv2.subtract(lightness, edges))


def _vignette(size: FrameSize) -> U8:
    """A multiplier (255 = unchanged) falling to about 70% in the corners."""
    ys = np.linspace(-1, 1, size.height)[:, None]
    xs = np.linspace(-1, 1, size.width)[None, :]
    falloff = 1 - 0.3 * np.clip((xs**2 + ys**2) / 2, 0, 1) ** 1.5
    return (falloff * 255).astype(np.uint8)
