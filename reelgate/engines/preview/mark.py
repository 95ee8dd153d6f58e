"""The small translucent "preview" mark in the bottom-right corner.

It is drawn into the luma plane (light text over a soft dark outline) and pulls the chroma
under it towards grey. It covers well under 1% of the frame and is translucent, so a frame
with the mark stays within about 1 dB of the same frame without it at the PSNR levels the
tests ask for (see docs/engines.md).
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from reelgate.engines.preview.frames import F32, U8, FrameSize, planes

TEXT = "preview"
#: Text height as a share of the frame's short side, with a floor so small renders stay legible.
HEIGHT_SHARE, MIN_HEIGHT_PX = 0.026, 7
TEXT_OPACITY, OUTLINE_OPACITY = 0.55, 0.35
TEXT_LUMA, OUTLINE_LUMA = 235.0, 16.0


class PreviewMark:
    """Precomputed coverage masks for one frame size; ``apply`` blends them into a frame."""

    def __init__(self, size: FrameSize) -> None:
        font = cv2.FONT_HERSHEY_SIMPLEX
        target = max(MIN_HEIGHT_PX, round(min(size.width, size.height) * HEIGHT_SHARE))
        (_, unit_h), _ = cv2.getTextSize(TEXT, font, 1.0, 1)
        font_scale = target / unit_h
        thickness = max(1, round(target / 12))
        (text_w, text_h), baseline = cv2.getTextSize(TEXT, font, font_scale, thickness)
        pad = max(2, target // 3)
        box_w = text_w + 2 * pad
        box_h = text_h + baseline + 2 * pad
        # Even box and position, so the half-size chroma masks line up with the luma one.
        box_w += box_w % 2
        box_h += box_h % 2
        margin = 2 * (max(2, target // 2) // 2)
        self.x0 = size.width - box_w - margin
        self.y0 = size.height - box_h - margin
        if self.x0 < 0 or self.y0 < 0:
            raise ValueError(f"a {size.width}x{size.height} frame is too small for the mark")
        text = np.zeros((box_h, box_w), np.uint8)
        cv2.putText(text, TEXT, (pad, pad + text_h), font, font_scale, 255, thickness, cv2.LINE_AA)
        outline = cv2.dilate(text, np.ones((3, 3), np.uint8), iterations=max(1, thickness))
        self._text = text.astype(np.float32) / 255 * TEXT_OPACITY
        self._outline = cv2.GaussianBlur(outline, (0, 0), 1.0).astype(np.float32) / 255
        self._outline *= OUTLINE_OPACITY
        cover = np.maximum(self._text, self._outline)
        self._chroma_cover = cast(
            F32, cv2.resize(cover, (box_w // 2, box_h // 2), interpolation=cv2.INTER_AREA)
        )
        self.box_w, self.box_h = box_w, box_h

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The region the mark may touch: (x, y, width, height) in luma pixels."""
        return self.x0, self.y0, self.box_w, self.box_h

    def apply(self, i420: U8) -> None:
        """Blend the mark into an I420 frame in place."""
        self.apply_planes(*planes(i420))

    def apply_planes(self, y: U8, u: U8, v: U8) -> None:
        """Blend the mark into a frame's Y, U and V planes in place."""
        x0, y0, w, h = self.box
        region = y[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
        region += (OUTLINE_LUMA - region) * self._outline
        region += (TEXT_LUMA - region) * self._text
        y[y0 : y0 + h, x0 : x0 + w] = (region + 0.5).astype(np.uint8)
        for plane in (u, v):
            part = plane[y0 // 2 : (y0 + h) // 2, x0 // 2 : (x0 + w) // 2].astype(np.float32)
            part += (128.0 - part) * self._chroma_cover
            plane[y0 // 2 : (y0 + h) // 2, x0 // 2 : (x0 + w) // 2] = (part + 0.5).astype(np.uint8)
