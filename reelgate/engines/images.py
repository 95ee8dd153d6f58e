"""Input images for engines: upright, RGB, and decoded no larger than the output needs.

A 50-megapixel photo rendered 1280 px wide needs a few percent of its pixels, and holding all
of them (plus the copies each conversion makes) is what made a legal input cost gigabytes.
So a ``SourceImage`` tells its size from the header alone, and ``rgb(cover)`` decodes:

- a JPEG at a reduced DCT scale (``Image.draft``: 1/2, 1/4 or 1/8, the smallest that still
  covers the size asked for), so its full-size picture never exists in memory;
- anything else whole (the fetcher capped its decoded size,
  ``REELGATE_MEDIA__MAX_DECODED_IMAGE_BYTES``), then reduced by the largest integer factor that
  still covers the size asked for (``Image.reduce``, a box filter), before any other copy.

The exact scaling to the output is left to the caller, on the small image.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from PIL import Image

from reelgate.core.errors import InvalidParameters

_EXIF_ORIENTATION = 0x0112
#: EXIF orientation → the transpose that shows the image upright (as ``ImageOps.exif_transpose``).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_QUARTER_TURNS = {5, 6, 7, 8}
#: Modes ``Image.reduce`` cannot average, and the mode each is reduced in. A palette must become
#: colours first (averaging indices is meaningless); 16-bit grey becomes 8-bit as ``convert``
#: would make it anyway.
_REDUCIBLE = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "L", "I;16B": "L", "I;16L": "L"}


class SourceImage:
    """An input image file, opened lazily: the size is known from its header, the pixels are
    decoded by ``rgb`` at the size asked for. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        try:
            self._image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # The fetcher refuses such images from their header; this keeps Pillow's own guard
            # (an error, or a warning turned into one) an input error rather than a crash.
            raise InvalidParameters(f"image has too many pixels to decode ({exc})") from exc
        try:
            # A JPEG's EXIF precedes its pixels. For a PNG Pillow decodes the pixels to look
            # for an eXIf chunk after them; it is decoded whole in any case.
            orientation = self._image.getexif().get(_EXIF_ORIENTATION)
        except BaseException:
            self._image.close()
            raise
        self._upright = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
        self._turned = orientation in _QUARTER_TURNS

    @property
    def size(self) -> tuple[int, int]:
        """Width and height as displayed (EXIF orientation applied)."""
        width, height = self._image.size
        return (height, width) if self._turned else (width, height)

    def rgb(self, cover: tuple[int, int] | None = None) -> Image.Image:
        """The image as upright RGB (alpha dropped), at least ``cover`` (width, height as
        displayed) on both sides where the source is that large; full size without ``cover``."""
        image: Image.Image = self._image
        if cover is not None:
            want = (cover[1], cover[0]) if self._turned else cover
            want = (max(1, want[0]), max(1, want[1]))
            # A no-op for anything but a JPEG; it must come before the pixels are decoded.
            self._image.draft(None, want)
            image.load()
            factor = min(image.width // want[0], image.height // want[1])
            if factor >= 2:
                if image.mode in _REDUCIBLE:
                    image = image.convert(_REDUCIBLE[image.mode])
                image = image.reduce(factor)
        rgb = image.convert("RGB")
        return rgb.transpose(self._upright) if self._upright is not None else rgb

    def close(self) -> None:
        self._image.close()

    def __enter__(self) -> SourceImage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def cover_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The size that ``size`` scales to with ``long_side`` on its long side (never larger)."""
    width, height = size
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))
