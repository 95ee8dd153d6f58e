"""First-to-last-frame morph by optical flow (OpenCV DIS), not a crossfade.

Flow is measured once, both ways, at a reduced size. For time ``s`` each output pixel samples
the first frame and the last frame where the flow says that point was and will be (the
bidirectional approximation of Jiang et al., "Super SloMo", 2018), and the two warped frames
are blended ``(1 - s) : s``. Sampling positions are computed on the small flow grid, where the
camera's view matrix is folded in too, and only their upsampled result touches full-size
pixels, in one remap per plane per end frame. The end frames themselves are copied exactly.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from reelgate.engines.preview.frames import (
    F32,
    NO_SECOND_MAP,
    U8,
    FrameSize,
    identity_grid,
    new_i420,
    planes,
    remap,
)

#: Long side of the frames flow is measured on: large enough for the motions between two
#: related stills, small enough that per-frame sampling positions cost little.
FLOW_LONG_SIDE = 320


class FlowMorph:
    """Renders frames between two I420 frames of the same size."""

    def __init__(self, first: U8, last: U8, size: FrameSize) -> None:
        self._first, self._last, self._size = first, last, size
        scale = min(1.0, FLOW_LONG_SIDE / max(size.width, size.height))
        self._flow_size = FrameSize(
            max(8, round(size.width * scale)), max(8, round(size.height * scale))
        )
        small = (self._flow_size.width, self._flow_size.height)
        gray_first = cv2.resize(planes(first)[0], small, interpolation=cv2.INTER_AREA)
        gray_last = cv2.resize(planes(last)[0], small, interpolation=cv2.INTER_AREA)
        dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)
        self._forward = cast(F32, dis.calc(gray_first, gray_last, NO_SECOND_MAP))
        self._backward = cast(F32, dis.calc(gray_last, gray_first, NO_SECOND_MAP))
        # Full-size pixel units per flow-grid pixel, and the flow grid's pixel centres in
        # full-size coordinates (cv2.resize's convention: x_full = (x_small + 0.5) * k - 0.5).
        self._kx = size.width / self._flow_size.width
        self._ky = size.height / self._flow_size.height
        grid = identity_grid(self._flow_size)
        self._grid_full = np.dstack(
            [(grid[..., 0] + 0.5) * self._kx - 0.5, (grid[..., 1] + 0.5) * self._ky - 0.5]
        ).astype(np.float32)
        self._scale = np.array([self._kx, self._ky], dtype=np.float32)
        self._warped_first = new_i420(size)
        self._warped_last = new_i420(size)

    def frame(self, s: float, view: F32, out: U8) -> U8:
        """The frame at time ``s`` (0 = first, 1 = last) seen through ``view`` (a sampling
        matrix, see ``View.sampling_matrix``), written into ``out``."""
        if s in (0.0, 1.0) and np.array_equal(view, _IDENTITY_VIEW):
            out[:] = self._first if s == 0.0 else self._last  # exactly the end frames
            return out
        # Where each output pixel looks in the in-between picture (full-size coordinates).
        linear, shift = view[:, :2], view[:, 2]
        looks = self._grid_full @ linear.T + shift
        # Flow from the in-between picture back to each end frame, in flow-grid pixels.
        to_first = -(1 - s) * s * self._forward + s * s * self._backward
        to_last = (1 - s) ** 2 * self._forward - s * (1 - s) * self._backward
        at = np.dstack(
            [(looks[..., 0] + 0.5) / self._kx - 0.5, (looks[..., 1] + 0.5) / self._ky - 0.5]
        ).astype(np.float32)
        self._warp_end(self._first, looks, to_first, at, self._warped_first)
        self._warp_end(self._last, looks, to_last, at, self._warped_last)
        cv2.addWeighted(self._warped_first, 1 - s, self._warped_last, s, 0.0, dst=out)
        return out

    def _warp_end(self, source: U8, looks: F32, flow: F32, at: F32, out: U8) -> None:
        flow_there = cv2.remap(
            flow, at, NO_SECOND_MAP, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        # Sampling positions on the flow grid, upsampled to each plane's size. Linear
        # upsampling of positions is exact inside the frame and clamps within a few pixels
        # of its edges, which only in-between frames use (the end frames are copied).
        where = (looks + flow_there * self._scale).astype(np.float32)
        luma, chroma = self._size, self._size.chroma
        luma_map = cv2.resize(where, (luma.width, luma.height), interpolation=cv2.INTER_LINEAR)
        chroma_where = (where - np.float32(0.5)) * np.float32(0.5)
        chroma_map = cv2.resize(
            chroma_where, (chroma.width, chroma.height), interpolation=cv2.INTER_LINEAR
        )
        remap(source, cast(F32, luma_map), cast(F32, chroma_map), out)


_IDENTITY_VIEW = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
