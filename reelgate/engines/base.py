"""The engine interface: ``render(spec, ctx) -> RenderResult``.

A worker fetches and checks a task's input media, builds a spec (``ImageToVideoSpec`` or
``VideoEditSpec``, with local file paths in place of URLs) and hands it to the engine with a
``RenderContext``. The engine writes its output files into ``ctx.scratch_dir`` and returns them;
the worker stores them. Engines report progress through the context and call
``ctx.raise_if_cancelled()`` between frames or steps, which raises ``TaskCancelled``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from reelgate.core.catalogue import Family
from reelgate.core.errors import TaskCancelled
from reelgate.wire import Shot


@dataclass(frozen=True)
class ImageToVideoSpec:
    prompt: str
    first_image: Path
    last_image: Path | None
    duration: int
    sound: bool
    multi_shot: bool
    shot_type: str  # "customize" | "intelligence"
    #: The normalised shots (see ``ImageToVideoRequest.shots``); empty for ``intelligence``
    #: without prompts, in which case the engine chooses its own shots.
    shots: tuple[Shot, ...]
    #: Derived from the request, so the same request renders the same video.
    seed: int
    #: The model path asked for, e.g. ``kling-video-o3-pro/image-to-video``.
    model: str = ""


@dataclass(frozen=True)
class VideoEditSpec:
    prompt: str
    video: Path
    reference_images: tuple[Path, ...]
    keep_original_sound: bool
    seed: int
    model: str = ""


RenderSpec = ImageToVideoSpec | VideoEditSpec


@dataclass(frozen=True)
class RenderOutput:
    path: Path
    #: The file extension, as RunningHub's ``results[].outputType``.
    output_type: str


@dataclass(frozen=True)
class RenderResult:
    outputs: tuple[RenderOutput, ...]


@dataclass
class RenderContext:
    """What an engine may use while rendering."""

    scratch_dir: Path
    #: Called with a fraction in [0, 1]; cheap to call per frame (the worker throttles writes).
    report_progress: Callable[[float], None] = lambda fraction: None
    #: Returns True once the task's owner asked for cancellation.
    is_cancelled: Callable[[], bool] = lambda: False
    #: Whether to draw the small "preview" mark (preview engine only).
    watermark: bool = True

    def raise_if_cancelled(self) -> None:
        if self.is_cancelled():
            raise TaskCancelled()


@dataclass(frozen=True)
class Capabilities:
    families: frozenset[Family]
    first_frame: bool = True
    last_frame: bool = True
    reference_images: int = 4
    audio: bool = True
    max_seconds: int = 15
    fps: int = 24


@runtime_checkable
class Engine(Protocol):
    name: str
    capabilities: Capabilities

    def ready(self) -> tuple[bool, str]:
        """Whether the engine can render here, and why not when it cannot."""
        ...

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult: ...
