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
from typing import Any, Protocol, runtime_checkable

from reelgate.core.catalogue import Family
from reelgate.core.errors import EngineUnavailable, TaskCancelled
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
    #: (width, height) asked for (the ``size`` extension); None: the engine's own size at the
    #: first image's aspect ratio.
    size: tuple[int, int] | None = None


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
    #: Coins to charge, when the engine knows better than the catalogue (an upstream's own
    #: usage); never more than what was reserved at submit.
    charge: int | None = None
    #: What the task's history should say about how it was made (e.g. where its sound came
    #: from, when no generative audio model made it).
    notes: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class RemoteJob:
    """A task for an engine that runs it elsewhere: the request as the user sent it."""

    task_id: int
    #: The model path, e.g. ``kling-video-o3-pro/image-to-video`` (or one reelgate does not
    #: know, passed through).
    model: str
    #: The request body, with wire names, as stored at submit.
    params: dict[str, Any]
    #: 1 for the first claim; more after a crash, a lease expiry or a hand-back.
    attempt: int


@dataclass
class RemoteContext:
    """What a remote engine may use: the durable checkpoint, progress, and when to stop.

    The checkpoint is the engine's own state (e.g. the remote task id). ``save_checkpoint`` writes
    it to the task in the database and returns only once it is there; the engine calls it before
    anything that costs money, and reads ``checkpoint`` back when the task is resumed. It raises
    ``TaskCancelled`` when the task is no longer this worker's.
    """

    scratch_dir: Path
    checkpoint: dict[str, Any] | None
    #: The worker running the task (slots and checkpoints are written in its name).
    worker_id: str
    #: ``(checkpoint, remote_key)``: ``remote_key`` takes (a fingerprint) or frees (``None``)
    #: a slot of an upstream key; leave it out to keep the slot as it is.
    save_checkpoint: Callable[..., None]
    report_progress: Callable[[float], None] = lambda fraction: None
    #: True once the task's owner cancelled it: cancel the remote job too.
    owner_cancelled: Callable[[], bool] = lambda: False
    #: True once the engine must stop: cancelled, swept, or the worker is shutting down (then
    #: the remote job goes on, and the task's next claim resumes it from the checkpoint).
    should_stop: Callable[[], bool] = lambda: False
    #: The local file behind a media URL (one of reelgate's own links, or a ``data:`` URI written
    #: to the scratch dir), or None for a URL the remote side can fetch itself.
    local_file: Callable[[str, str], Path | None] = lambda url, field: None
    #: ``(url, field, kind)``: the checked local file behind any media URL a local engine takes
    #: (reelgate's own links, ``data:`` URIs, http(s) URLs through the network guard), held to
    #: the same rules (``kind``: ``image`` or ``video``); for remote sides that take files.
    fetch_media: Callable[[str, str, str], Path] = lambda url, field, kind: _no_fetcher(field)


def _no_fetcher(field: str) -> Path:
    raise EngineUnavailable(f"{field}: this worker cannot fetch input media for a remote engine")


@runtime_checkable
class RemoteEngine(Protocol):
    """An engine that runs tasks elsewhere (``upstream``): it gets the request, not media."""

    name: str
    capabilities: Capabilities
    remote: bool

    def ready(self) -> tuple[bool, str]: ...

    def run(self, job: RemoteJob, ctx: RemoteContext) -> RenderResult: ...

    def sweep(self) -> int:
        """Housekeeping any worker does now and then (e.g. pass on cancels); how much it did."""
        ...


@runtime_checkable
class Engine(Protocol):
    name: str
    capabilities: Capabilities

    def ready(self) -> tuple[bool, str]:
        """Whether the engine can render here, and why not when it cannot."""
        ...

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult: ...
