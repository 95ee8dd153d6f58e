"""Still images of a stored MP4, for ``/v1/videos/{id}/content?variant=…``.

``thumbnail`` is the frame at the middle of the video as WebP, at the video's size;
``spritesheet`` is a JPEG grid of frames spread evenly over the video, ``COLUMNS`` to a row,
each ``TILE_WIDTH`` pixels wide. Both decode the video once, frame by frame (a 15 s clip is a
few hundred frames), and keep only the frames they use.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
from PIL import Image

from reelgate.core.errors import RenderFailed
from reelgate.storage.base import task_folder

#: The still variants, by name: the file stored beside a task's results.
STILLS = {"thumbnail": "thumbnail.webp", "spritesheet": "spritesheet.jpg"}
#: Frames in a spritesheet (fewer for a shorter video) and tiles per row.
FRAMES, COLUMNS = 10, 5
#: Width of a spritesheet tile in pixels (the height keeps the video's aspect ratio).
TILE_WIDTH = 256


def still_key(task_id: int, variant: str) -> str:
    """Where a task's still is stored (made or not): in its folder, beside its results."""
    return f"{task_folder(task_id)}/{task_id}_{STILLS[variant]}"


def still_keys(task_id: int) -> list[str]:
    """Every still a task may have, for whoever deletes its files."""
    return [still_key(task_id, variant) for variant in STILLS]


def thumbnail(video: Path, dest: Path) -> None:
    """The middle frame of ``video`` as a WebP file at ``dest``."""
    total = _frame_count(video)
    (frame,) = _frames(video, [total // 2])
    frame.save(dest, format="WEBP", quality=85)


def spritesheet(video: Path, dest: Path) -> None:
    """Frames spread evenly over ``video`` in a JPEG grid at ``dest``."""
    total = _frame_count(video)
    count = max(1, min(FRAMES, total))
    wanted = sorted({(2 * n + 1) * total // (2 * count) for n in range(count)})
    frames = _frames(video, wanted)
    width = min(TILE_WIDTH, frames[0].width)
    height = max(2, round(frames[0].height * width / frames[0].width))
    columns = min(COLUMNS, len(frames))
    sheet = Image.new("RGB", (columns * width, math.ceil(len(frames) / columns) * height))
    for n, frame in enumerate(frames):
        tile = frame.resize((width, height), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((n % columns) * width, (n // columns) * height))
    sheet.save(dest, format="JPEG", quality=85)


def _frame_count(video: Path) -> int:
    """Frames in the video, counted by decoding when the header does not say."""
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return max(1, sum(1 for _ in container.decode(stream)))
    except (av.FFmpegError, IndexError) as exc:
        raise RenderFailed(f"the stored video cannot be read: {exc}") from exc


def _frames(video: Path, indexes: list[int]) -> list[Image.Image]:
    """The frames at ``indexes`` (ascending) as RGB images; the last frame stands in for an
    index past the end (a header that counted more frames than there are)."""
    found: list[Image.Image] = []
    wanted = iter(indexes)
    target = next(wanted, None)
    last: av.VideoFrame | None = None
    try:
        with av.open(str(video)) as container:
            for n, frame in enumerate(container.decode(container.streams.video[0])):
                if target is None:
                    break
                last = frame
                if n == target:
                    image = _image(frame)
                    while target == n:
                        found.append(image)
                        target = next(wanted, None)
            if target is not None and last is not None:
                image = _image(last)
                found.extend(image for _ in range(len(indexes) - len(found)))
    except (av.FFmpegError, IndexError) as exc:
        raise RenderFailed(f"the stored video cannot be read: {exc}") from exc
    if not found:
        raise RenderFailed("the stored video has no frames")
    return found


def _image(frame: av.VideoFrame) -> Image.Image:
    return Image.fromarray(frame.to_ndarray(format="rgb24"))
