"""Frame sizes, input images, and geometry on I420 frames.

The renderer works on I420 (planar YUV 4:2:0) frames, the encoder's own format: a frame is
one ``(height * 3 / 2, width)`` uint8 array holding the Y plane followed by the quarter-size
U and V planes. Warping I420 moves half the bytes RGB would, and the encoder takes the result
without a colour conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.engines.images import SourceImage

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: "No array" for OpenCV arguments that its type stubs require but that may be absent:
#: ``cv2.remap``'s second map when the first holds (x, y) pairs (an empty array there gives
#: wrong results; only ``None`` means absent), and a flow's initial estimate.
NO_SECOND_MAP: Any = None


@dataclass(frozen=True)
class FrameSize:
    width: int
    height: int

    @property
    def chroma(self) -> FrameSize:
        return FrameSize(self.width // 2, self.height // 2)


def output_size(image_width: int, image_height: int, long_side: int) -> FrameSize:
    """The frame size for an image: its aspect ratio, ``long_side`` on the long side, even."""
    if image_width >= image_height:
        return FrameSize(long_side, _even(long_side * image_height / image_width))
    return FrameSize(_even(long_side * image_width / image_height), long_side)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def load_rgb(path: Path, cover: FrameSize | None = None) -> U8:
    """An image file as RGB, upright (EXIF orientation applied), alpha dropped; decoded no
    larger than needed to cover ``cover`` (see ``SourceImage.rgb``), full size without it."""
    with SourceImage(path) as source:
        return load_covering(source, cover)


def load_covering(source: SourceImage, cover: FrameSize | None) -> U8:
    """``source`` as an RGB array at least ``cover`` on both sides (where it is that large)."""
    wanted = (cover.width, cover.height) if cover is not None else None
    return np.asarray(source.rgb(wanted), dtype=np.uint8)


def fit_to_frame(rgb: U8, size: FrameSize) -> U8:
    """Scale an image to cover ``size`` and centre-crop the rest (no stretching)."""
    height, width = rgb.shape[:2]
    scale = max(size.width / width, size.height / height)
    scaled_w = max(size.width, round(width * scale))
    scaled_h = max(size.height, round(height * scale))
    shrinking = scaled_w * scaled_h < width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    scaled = cv2.resize(rgb, (scaled_w, scaled_h), interpolation=interpolation)
    x0 = (scaled_w - size.width) // 2
    y0 = (scaled_h - size.height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + size.height, x0 : x0 + size.width])


def rgb_to_i420(rgb: U8) -> U8:
    return cast(U8, cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420))


def planes(i420: U8) -> tuple[U8, U8, U8]:
    """Views of the Y, U and V planes of an I420 frame (writing to them writes the frame)."""
    height = i420.shape[0] * 2 // 3
    width = i420.shape[1]
    flat = i420.reshape(-1)  # a view: frames are contiguous
    luma, chroma = height * width, (height // 2) * (width // 2)
    u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma :].reshape(height // 2, width // 2)
    return i420[:height], u, v


def new_i420(size: FrameSize) -> U8:
    return np.empty((size.height * 3 // 2, size.width), dtype=np.uint8)


def warp_affine(source: U8, matrix: F32, out: U8) -> U8:
    """Sample ``source`` (I420) at ``matrix @ (x, y, 1)`` for every output pixel, into ``out``.

    ``matrix`` is in luma pixels; the chroma planes use the same map at half scale.
    """
    chroma_matrix = matrix.copy()
    chroma_matrix[:, 2] = (matrix[:, 2] + matrix[:, 0] * 0.5 + matrix[:, 1] * 0.5 - 0.5) * 0.5
    for plane_in, plane_out, m in zip(
        planes(source), planes(out), (matrix, chroma_matrix, chroma_matrix), strict=True
    ):
        cv2.warpAffine(
            plane_in,
            m,
            (plane_out.shape[1], plane_out.shape[0]),
            dst=plane_out,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
    return out


def remap(source: U8, luma_map: F32, chroma_map: F32, out: U8) -> U8:
    """Sample ``source`` (I420) at per-pixel positions (``(h, w, 2)`` maps in plane pixels)."""
    for plane_in, plane_out, where in zip(
        planes(source), planes(out), (luma_map, chroma_map, chroma_map), strict=True
    ):
        cv2.remap(
            plane_in,
            where,
            NO_SECOND_MAP,
            cv2.INTER_LINEAR,
            dst=plane_out,
            borderMode=cv2.BORDER_REFLECT_101,
        )
    return out


def identity_grid(size: FrameSize) -> F32:
    """Each pixel's own (x, y) position, shape (h, w, 2)."""
    xs, ys = np.meshgrid(
        np.arange(size.width, dtype=np.float32), np.arange(size.height, dtype=np.float32)
    )
    return np.dstack([xs, ys])
