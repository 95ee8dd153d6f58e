"""The contract's limits on input media (contract §2.2 for images, §3.1 for videos).

Each check raises ``InvalidParameters`` (1007) with a message that states the measured value
and the rule; the caller prefixes the field name.
"""

from __future__ import annotations

from reelgate.config import MediaSettings
from reelgate.core.errors import InvalidParameters
from reelgate.media.probe import ImageInfo, VideoInfo
from reelgate.media.sniff import Sniffed

IMAGE_FORMATS = ("png", "jpg")
VIDEO_FORMATS = ("mp4",)

#: Slack on the duration limits. Container durations carry rounding from time bases and encoder
#: delay, so a clip cut to exactly 10 s can measure 10.01 s; a frame at 30 fps is 0.033 s.
DURATION_TOLERANCE_SECONDS = 0.05


def _got(sniffed: Sniffed, kind: str) -> str:
    """What a file is, as an error message names it: ``webp``, ``mp4 video``, ``zip archive``."""
    if sniffed.kind == kind:
        return sniffed.ext
    return "zip archive" if sniffed.kind == "zip" else f"{sniffed.ext} {sniffed.kind}"


def check_image_format(sniffed: Sniffed) -> None:
    if sniffed.kind != "image" or sniffed.ext not in IMAGE_FORMATS:
        raise InvalidParameters(f"image must be JPG or PNG, got {_got(sniffed, 'image')}")


def check_video_format(sniffed: Sniffed) -> None:
    if sniffed.kind != "video" or sniffed.ext not in VIDEO_FORMATS:
        raise InvalidParameters(f"video must be MP4, got {_got(sniffed, 'video')}")


def check_image(info: ImageInfo, settings: MediaSettings) -> None:
    size = f"image is {info.width}x{info.height} px"
    shorter, longer = sorted((info.width, info.height))
    if shorter < settings.min_image_side:
        raise InvalidParameters(
            f"{size}; the shorter side must be at least {settings.min_image_side} px"
        )
    ratio = settings.max_image_ratio
    if longer / shorter > ratio:
        raise InvalidParameters(
            f"{size} (aspect ratio {longer / shorter:.2f}:1); the aspect ratio must be between "
            f"1:{ratio:g} and {ratio:g}:1"
        )


def check_video(info: VideoInfo, settings: MediaSettings) -> None:
    low, high = settings.min_video_seconds, settings.max_video_seconds
    if not (low - DURATION_TOLERANCE_SECONDS <= info.duration <= high + DURATION_TOLERANCE_SECONDS):
        raise InvalidParameters(
            f"video is {info.duration:.2f} s long; it must be between {low:g} and {high:g} s"
        )
    size = f"video is {info.width}x{info.height} px"
    shorter, longer = sorted((info.width, info.height))
    if shorter < settings.min_video_side:
        raise InvalidParameters(
            f"{size}; the shorter side must be at least {settings.min_video_side} px"
        )
    if longer > settings.max_video_side:
        raise InvalidParameters(
            f"{size}; the longer side must be at most {settings.max_video_side} px"
        )
