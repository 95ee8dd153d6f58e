"""Colour grading for video edits: reference-palette transfer plus prompt-keyed styles.

Reference images drive a Reinhard transfer (Reinhard et al., "Color Transfer between Images",
2001): per channel of CIELAB, the source's mean and spread are moved to the references'. Style
words then reshape the channels on top (black and white, sepia, night, …). Every one of these
is a per-channel curve in 8-bit LAB, so the whole grade folds into one lookup table; only a few
styles add a spatial step (vignette, cartoon edges, pencil).

Frames arrive as I420. A grade without a spatial step is a fixed function of a pixel's colour,
so it is not evaluated in LAB per frame: it is evaluated once on a grid of YUV colours and
fitted with per-plane lookup tables indexed by pairs of 8-bit values (see ``PairTables``), which
a frame costs a few table look-ups per pixel. Grades with a spatial step run the LAB round trip
per frame, at chroma resolution.
"""

from __future__ import annotations

import sys
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
I16 = npt.NDArray[np.int16]
U16 = npt.NDArray[np.uint16]
#: A frame as its Y, U and V planes (views; rows may be padded).
Planes = tuple[U8, U8, U8]
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


def stats_copy(rgb: U8) -> U8:
    """The small copy of an image that statistics are measured on (long side
    ``STATS_LONG_SIDE`` at most)."""
    height, width = rgb.shape[:2]
    scale = min(1.0, STATS_LONG_SIDE / max(height, width))
    if scale == 1.0:
        return rgb
    return cast(
        U8,
        cv2.resize(
            rgb,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        ),
    )


def lab_stats(images: Iterable[U8]) -> LabStats:
    """Pooled LAB statistics of RGB images (each measured on a small copy)."""
    pixels = []
    for rgb in images:
        small = stats_copy(rgb)
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
#: Styles with a step that depends on neighbouring pixels, not only on a pixel's colour.
_SPATIAL = {Style.CARTOON, Style.SKETCH} | _VIGNETTED


class Grade:
    """The grade for one edit: a LAB lookup table and the spatial steps its styles need.

    ``palette`` holds RGB images of the source (small copies of its key frames, the ones its
    statistics came from): the per-plane tables of a grade without a spatial step are fitted
    most closely on the colours they contain. A ``Grade`` keeps scratch buffers, so one
    instance serves one thread.
    """

    def __init__(
        self,
        prompt: str,
        size: FrameSize,
        source: LabStats,
        reference: LabStats | None = None,
        palette: Iterable[U8] = (),
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
        self.spatial = bool(_SPATIAL & set(self.styles))
        self._tables = None if self.spatial else PairTables(self.lut, size, palette)

    def apply_i420(self, i420: U8, out: U8 | None = None) -> U8:
        """The graded frame, written into ``out`` (a new I420 array if it is not given)."""
        if out is None:
            out = np.empty_like(i420)
        self.apply_planes(planes(i420), planes(out))
        return out

    def apply_planes(self, source: Planes, out: Planes) -> None:
        """Grade a frame given as its Y, U and V planes into another frame's planes."""
        if self._tables is not None:
            self._tables.apply(source, out)
        else:
            self._apply_lab(source, out)

    def _apply_lab(self, source: Planes, out: Planes) -> None:
        """The grade through LAB, at chroma resolution.

        The half-size picture is graded in LAB, its new chroma planes are the output's, and
        its change in luma is upsampled onto the full-size luma. Grades are smooth functions
        of colour, so this matches a full-size grade away from sharp colour edges, at a
        quarter of the cost.
        """
        luma, u, v = source
        half = (u.shape[1], u.shape[0])
        luma_half = cv2.resize(luma, half, interpolation=cv2.INTER_AREA)
        rgb_half = cv2.transform(cv2.merge([luma_half, u, v]), _YUV_TO_RGB)
        graded = cv2.transform(self._grade_rgb(cast(U8, rgb_half)), _RGB_TO_YUV)
        new_luma_half, new_u, new_v = cv2.split(graded)
        change = cv2.subtract(new_luma_half, luma_half, dtype=cv2.CV_16S)
        change_full = cv2.resize(
            change, (luma.shape[1], luma.shape[0]), interpolation=cv2.INTER_LINEAR
        )
        out_luma, out_u, out_v = out
        cv2.add(luma, change_full, dst=out_luma, dtype=cv2.CV_8U)
        out_u[:] = new_u
        out_v[:] = new_v

    def _grade_rgb(self, rgb: U8) -> U8:
        """The graded picture (a new RGB array at chroma resolution)."""
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        cv2.LUT(lab, self.lut, dst=lab)
        if self.spatial:
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


def graded_yuv(lut: U8, yuv: U8) -> F64:
    """The LAB grade ``lut`` of YUV pixels (shape (n, 1, 3)), without spatial steps, as
    unrounded YUV (shape (n, 3))."""
    rgb = cv2.transform(yuv, _YUV_TO_RGB)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    cv2.LUT(lab, lut, dst=lab)
    back = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32)
    return cast(F64, cv2.transform(back, _RGB_TO_YUV.astype(np.float32)).reshape(-1, 3)).astype(
        np.float64
    )


#: The YUV grid on which a grade is evaluated exactly to fit ``PairTables``: every 8th level
#: and 255 on each axis (33³ colours, a few milliseconds in LAB).
TABLE_NODES = np.array([*range(0, 256, 8), 255])
#: Fraction bits of the tables' fixed-point entries (int16: the sums stay far from overflow).
TABLE_FRACTION_BITS = 4
#: Rounds of backfitting (alternating least squares); the fit has settled well before this.
TABLE_FIT_ROUNDS = 10
#: Weight of grid colours absent from the palette, against 1 for its most common colours.
TABLE_FLOOR_WEIGHT = 0.02


class PairTables:
    """A colour-only grade as per-plane lookup tables on pairs of 8-bit values.

    Each output plane is ``A[Y, U] + B[Y, V] + C[U, V]`` at chroma resolution (``Y`` is the
    luma averaged over each chroma sample), with every pairwise dependence at full 8-bit
    resolution: each table has 65536 entries, which ``cv2.LUT`` applies to a 16-bit index
    image. Only the three-way interaction of the grade is left out. The tables are a weighted
    least-squares fit to the exact LAB grade on a 33³ YUV grid, weighted toward the colours of
    the source's palette and ignoring colours outside the RGB gamut; in-between levels are
    interpolated linearly. The luma plane is graded at full resolution by the grade's curve
    on the grey axis, plus the fitted chroma-dependent part upsampled from chroma resolution.
    """

    def __init__(self, lut: U8, size: FrameSize, palette: Iterable[U8] = ()) -> None:
        nodes = TABLE_NODES.astype(np.float64)
        n = len(nodes)
        grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), axis=-1)
        grid = grid.reshape(-1, 1, 3)
        rgb = cv2.transform(grid.astype(np.float32), _YUV_TO_RGB.astype(np.float32))
        in_gamut = np.all((rgb > -8) & (rgb < 263), axis=-1).reshape(n, n, n)
        target = graded_yuv(lut, grid.astype(np.uint8)).reshape(n, n, n, 3)
        weight = (in_gamut + 1e-3) * (TABLE_FLOOR_WEIGHT + _palette_density(palette, n))
        pair_yu, pair_yv, pair_uv = _backfit(target, weight[..., None])
        # The grey axis at every level, exactly: the full-size luma's own curve.
        grey = np.stack([np.arange(256), np.full(256, 128), np.full(256, 128)], axis=-1)
        grey_luma = graded_yuv(lut, grey.astype(np.uint8).reshape(-1, 1, 3))[:, 0]
        self._luma_curve = np.clip(np.round(grey_luma), 0, 255).astype(np.uint8)
        spread = np.stack([np.interp(np.arange(256), nodes, row) for row in np.eye(n)], axis=-1)
        tables: list[tuple[I16, I16, I16]] = []
        for plane in range(3):
            full = [spread @ pair[..., plane] @ spread.T for pair in (pair_yu, pair_yv, pair_uv)]
            if plane == 0:  # luma: only what the grey-axis curve leaves out
                full[0] = full[0] - grey_luma[:, None]
            scaled = [np.round(t * (1 << TABLE_FRACTION_BITS)).reshape(-1) for t in full]
            yu, yv, uv = (np.clip(t, -(1 << 14), 1 << 14).astype(np.int16) for t in scaled)
            tables.append((yu, yv, uv))
        self._tables = tables
        chroma = size.chroma
        self._luma_half = np.empty((chroma.height, chroma.width), np.uint8)
        self._index = [np.empty((chroma.height, chroma.width), np.uint16) for _ in range(3)]
        self._sum = np.empty((chroma.height, chroma.width), np.int16)
        self._term = np.empty((chroma.height, chroma.width), np.int16)
        self._cross = np.empty((chroma.height, chroma.width), np.uint8)
        self._cross_full = np.empty((size.height, size.width), np.uint8)

    def apply(self, source: Planes, out: Planes) -> None:
        """Grade a frame's Y, U and V planes into ``out`` (planes of the same sizes)."""
        luma, u, v = source
        out_luma, out_u, out_v = out
        half = (u.shape[1], u.shape[0])
        cv2.resize(luma, half, dst=self._luma_half, interpolation=cv2.INTER_AREA)
        index_yu, index_yv, index_uv = (
            _pair_index(high, low, index)
            for high, low, index in zip(
                (self._luma_half, self._luma_half, u), (u, v, v), self._index, strict=True
            )
        )
        scale = 1.0 / (1 << TABLE_FRACTION_BITS)
        # The luma term is signed; it is kept 8-bit, offset by 128, because adding and
        # upsampling 8-bit planes is much faster than mixing 8- and 16-bit ones.
        for (yu, yv, uv), dst, offset in zip(
            self._tables, (self._cross, out_u, out_v), (128.0, 0.0, 0.0), strict=True
        ):
            cv2.LUT(index_yu, yu, dst=self._sum)
            cv2.LUT(index_uv, uv, dst=self._term)
            cv2.add(self._sum, self._term, dst=self._sum)
            cv2.LUT(index_yv, yv, dst=self._term)
            # Rounds to nearest and saturates to 8 bits.
            cv2.addWeighted(self._sum, scale, self._term, scale, offset, dst=dst, dtype=cv2.CV_8U)
        cv2.LUT(luma, self._luma_curve, dst=out_luma)
        cv2.resize(
            self._cross,
            (luma.shape[1], luma.shape[0]),
            dst=self._cross_full,
            interpolation=cv2.INTER_LINEAR,
        )
        cv2.addWeighted(out_luma, 1.0, self._cross_full, 1.0, -128.0, dst=out_luma)


def _pair_index(high: U8, low: U8, out: U16) -> U16:
    """``high * 256 + low``: the index of a pair of 8-bit planes into a 65536-entry table."""
    if sys.byteorder == "little" and high.flags.c_contiguous and low.flags.c_contiguous:
        # Two interleaved bytes are that 16-bit number already; one merge writes them.
        cv2.merge([low, high], dst=out.view(np.uint8).reshape(*out.shape, 2))
    else:
        np.left_shift(high, 8, out=out, dtype=np.uint16)
        np.bitwise_or(out, low, out=out)
    return out


def _palette_density(palette: Iterable[U8], n: int) -> F64:
    """How common each grid colour is in the palette's images, from 0 to 1, smoothed."""
    counts = np.zeros(n**3, dtype=np.float64)
    step = int(TABLE_NODES[1])
    for rgb in palette:
        yuv = cv2.transform(rgb, _RGB_TO_YUV).reshape(-1, 3)
        nearest = np.minimum(np.rint(yuv / step).astype(np.int64), n - 1)
        flat = (nearest[:, 0] * n + nearest[:, 1]) * n + nearest[:, 2]
        counts += np.bincount(flat, minlength=n**3)
    density = counts.reshape(n, n, n)
    for axis in range(3):  # a [1, 2, 1] blur, so neighbouring colours count too
        padded = np.concatenate(
            [density.take([0], axis), density, density.take([-1], axis)], axis=axis
        )
        density = (
            padded.take(range(0, n), axis)
            + 2 * padded.take(range(1, n + 1), axis)
            + padded.take(range(2, n + 2), axis)
        ) / 4
    peak = density.max()
    return cast(F64, density / peak) if peak > 0 else density


def _backfit(target: F64, weight: F64) -> tuple[F64, F64, F64]:
    """Weighted least squares of ``target[y, u, v] ≈ A[y, u] + B[y, v] + C[u, v]`` (per last
    axis), by alternating exact solves for each table given the other two."""
    n = target.shape[0]
    pair_yu = np.zeros((n, n, target.shape[-1]))
    pair_yv = np.zeros_like(pair_yu)
    pair_uv = np.zeros_like(pair_yu)
    over_v, over_u, over_y = weight.sum(axis=2), weight.sum(axis=1), weight.sum(axis=0)
    for _ in range(TABLE_FIT_ROUNDS):
        rest = target - pair_yv[:, None] - pair_uv[None]
        pair_yu = (rest * weight).sum(axis=2) / over_v
        rest = target - pair_yu[:, :, None] - pair_uv[None]
        pair_yv = (rest * weight).sum(axis=1) / over_u
        rest = target - pair_yu[:, :, None] - pair_yv[:, None]
        pair_uv = (rest * weight).sum(axis=0) / over_y
    return pair_yu, pair_yv, pair_uv


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
