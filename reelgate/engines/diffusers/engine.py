"""The ``diffusers`` engine: the O3 endpoints served by open models on the operator's GPUs.

Which configured model renders a request follows from what it asks: a last frame needs a model
with ``last_frame`` (Wan FLF2V), an edit one with ``edit`` (Wan VACE), ``sound: true`` prefers
one with ``sound`` (LTX-2) when the operator enabled it. Every request is cut into passes on the
model's grid (``grid.py``) and rendered pass by pass, each continuing from the previous one's
last frame; progress and cancellation are checked at every denoising step.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reelgate.config import DiffusersModel, Settings
from reelgate.core.catalogue import Family
from reelgate.core.errors import EngineUnavailable, RenderFailed, TaskCancelled
from reelgate.engines.base import (
    Capabilities,
    ImageToVideoSpec,
    RenderContext,
    RenderOutput,
    RenderResult,
    RenderSpec,
    VideoEditSpec,
)
from reelgate.engines.diffusers.grid import Grid, Pass, for_model, plan
from reelgate.engines.diffusers.loader import (
    PipelineCache,
    device_of,
    import_diffusers,
    import_torch,
    weights_present,
)
from reelgate.engines.diffusers.sound import ProceduralSound, SoundSource
from reelgate.engines.images import SourceImage
from reelgate.engines.mediaio import (
    AUDIO_RATE,
    EncoderSettings,
    MediaWriter,
    iter_rgb_frames,
    open_video,
    probe,
)

log = logging.getLogger("reelgate.diffusers")

#: What a task's history says about its sound when no audio model made it.
SYNTH_SOUND = f"sound: {ProceduralSound.name}"


class DiffusersEngine:
    name = "diffusers"
    remote = False
    capabilities = Capabilities(families=frozenset(Family), reference_images=4, fps=16)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.diffusers
        self.cache = PipelineCache(self.settings)
        self.encoder = EncoderSettings()
        #: Sound for models that make none.
        self.sound: SoundSource = ProceduralSound()

    # -- what is here ----------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if not self.settings.models:
            return False, "no model configured (REELGATE_DIFFUSERS__MODELS)"
        try:
            import_diffusers()
            device = device_of(self.settings)
        except EngineUnavailable as error:
            return False, error.message
        missing = [n for n, m in self.settings.models.items() if not weights_present(m)]
        where = "a GPU is visible" if device.startswith("cuda") else f"no GPU: running on {device}"
        if missing and not self.settings.allow_hub:
            return False, f"weights missing for {', '.join(missing)}; {where}"
        return True, f"{len(self.settings.models)} models; {where}"

    def model_states(self) -> list[dict[str, Any]]:
        """Each configured model, what it covers, and whether its weights are on disk."""
        return [
            {
                "name": name,
                "pipeline": model.pipeline,
                "features": sorted(model.features),
                "path": str(model.path),
                "weightsPresent": weights_present(model),
                "dtype": model.dtype,
                "offload": model.offload,
            }
            for name, model in self.settings.models.items()
        ]

    def choose(self, feature: str, *, sound: bool = False) -> str:
        """The model for a request: one covering ``feature`` (``first_frame``, ``last_frame``
        or ``edit``), preferring one that makes its own sound when sound is asked for and the
        operator enabled it."""
        fits = [name for name, m in self.settings.models.items() if feature in m.features]
        if not fits:
            raise EngineUnavailable(f"no diffusers model is configured for {feature}")
        if sound and self.settings.ltx2_audio:
            with_sound = [n for n in fits if "sound" in self.settings.models[n].features]
            if with_sound:
                return with_sound[0]
        without = [n for n in fits if "sound" not in self.settings.models[n].features]
        return (without or fits)[0]

    # -- rendering -------------------------------------------------------------------------

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult:
        output = ctx.scratch_dir / "output.mp4"
        if isinstance(spec, ImageToVideoSpec):
            notes = self._image_to_video(spec, ctx, output)
        else:
            notes = self._video_edit(spec, ctx, output)
        return RenderResult((RenderOutput(output, "mp4"),), notes=tuple(notes))

    def _image_to_video(
        self, spec: ImageToVideoSpec, ctx: RenderContext, output: Path
    ) -> list[str]:
        feature = "first_frame" if spec.last_image is None else "last_frame"
        name = self.choose(feature, sound=spec.sound)
        model = self.settings.models[name]
        grid = model_grid(model)
        shots = list(spec.shots) or []
        prompts = [shot.prompt for shot in shots] or [spec.prompt]
        seconds = [float(shot.seconds) for shot in shots] or [float(spec.duration)]
        passes = plan(grid, seconds)
        # The size follows the first image's header (an asked size sets the aspect ratio
        # instead; the model's long side and grid set the pixels); the images are decoded only
        # as large as that size needs.
        with SourceImage(spec.first_image) as source:
            width, height = grid.size(*(spec.size or source.size), model.long_side)
            first = source.rgb((width, height))
        last = _rgb(spec.last_image, (width, height)) if spec.last_image is not None else None
        pipeline = self.cache.get(name)
        steps = _Steps(ctx, len(passes) * model.steps)
        own_sound = spec.sound and self.settings.ltx2_audio and "sound" in model.features
        frames: list[np.ndarray[Any, np.dtype[np.uint8]]] = []
        sound: list[np.ndarray[Any, np.dtype[np.float32]]] = []
        start = first
        for n, step in enumerate(passes):
            end = last if last is not None and n == len(passes) - 1 else None
            rendered, audio = self._call(
                name,
                pipeline,
                steps,
                **_key_frames(model, start, end, (width, height)),
                prompt=prompts[step.shot],
                height=height,
                width=width,
                num_frames=step.frames,
                seed=spec.seed + n,
            )
            frames.extend(_kept(rendered, step))
            if own_sound and audio is not None:
                sound.append(_fitted(audio, step.keep / grid.fps))
            start = Image.fromarray(frames[-1])
        notes = [f"rendered by {name} ({model.pipeline}), {len(passes)} passes"]
        track = None
        if own_sound and sound:
            track = np.concatenate(sound, axis=1)
            notes.append(f"sound: generated with the video by {name}")
        elif spec.sound:
            cuts = _cut_times(passes, grid)
            track = self.sound.track(spec.prompt, len(frames) / grid.fps, spec.seed, cuts)
            notes.append(f"sound: {self.sound.name}")
        _write(output, frames, grid.fps, self.encoder, audio=track)
        return notes

    def _video_edit(self, spec: VideoEditSpec, ctx: RenderContext, output: Path) -> list[str]:
        name = self.choose("edit")
        model = self.settings.models[name]
        grid = model_grid(model)
        info = probe(spec.video)
        width, height = grid.size(info.width, info.height, model.long_side)
        # Each frame is scaled to the model's size as it is decoded: the source's full-size
        # frames are never held together.
        frames_in = iter_rgb_frames(spec.video, (width, height))
        source = _resampled(frames_in, Fraction(info.fps), grid.fps)
        seconds = len(source) / grid.fps
        passes = plan(grid, [seconds])
        references = [
            _rgb(path, (width, height)).resize((width, height)) for path in spec.reference_images
        ]
        pipeline = self.cache.get(name)
        steps = _Steps(ctx, len(passes) * model.steps)
        frames: list[np.ndarray[Any, np.dtype[np.uint8]]] = []
        for n, step in enumerate(passes):
            made = len(frames)
            video = [Image.fromarray(f) for f in source[made : made + step.keep]]
            # A continuing pass is anchored on the previous pass's last frame: kept (black
            # mask), while the rest is generated (white mask) under the source's guidance.
            keep_mask = [Image.new("L", (width, height), 255) for _ in video]
            if step.continues:
                video.insert(0, Image.fromarray(frames[-1]))
                keep_mask.insert(0, Image.new("L", (width, height), 0))
            while len(video) < step.frames:  # the grid rounds up: pad with the last frame
                video.append(video[-1])
                keep_mask.append(keep_mask[-1])
            rendered, _sound = self._call(
                name,
                pipeline,
                steps,
                video=video,
                mask=keep_mask,
                reference_images=references or None,
                prompt=spec.prompt,
                height=height,
                width=width,
                num_frames=step.frames,
                seed=spec.seed + n,
            )
            frames.extend(_kept(rendered, step))
        template = spec.video if spec.keep_original_sound and info.has_audio else None
        _write(output, frames, grid.fps, self.encoder, audio_from=template)
        notes = [f"rendered by {name} ({model.pipeline}), {len(passes)} passes"]
        if template is not None:
            notes.append("sound: the source's audio, copied unchanged")
        return notes

    def _call(
        self, name: str, pipeline: Any, steps: _Steps, *, seed: int, **inputs: Any
    ) -> tuple[np.ndarray[Any, np.dtype[np.float32]], Audio | None]:
        """One pipeline call, with per-step progress and cancellation, GPU errors as task
        errors: the frames as floats in [0, 1], shape (frames, height, width, 3), and the
        sound the model made with them, if it makes any."""
        torch = import_torch()
        model = self.settings.models[name]
        inputs = {k: v for k, v in inputs.items() if v is not None}
        try:
            result = pipeline(
                **inputs,
                num_inference_steps=model.steps,
                guidance_scale=model.guidance_scale,
                generator=torch.Generator(device="cpu").manual_seed(seed),
                output_type="np",
                callback_on_step_end=steps.callback,
            )
        except torch.OutOfMemoryError:
            self.cache.release()
            raise RenderFailed(
                f"the GPU ran out of memory rendering {inputs['width']}x{inputs['height']}, "
                f'{inputs["num_frames"]} frames with {name}: set "offload": "model" (or '
                f'"sequential"), "vae_tiling": true or a smaller "long_side" for it in '
                "REELGATE_DIFFUSERS__MODELS"
            ) from None
        except TaskCancelled:
            self.cache.release()
            raise
        frames: np.ndarray[Any, np.dtype[np.float32]] = np.asarray(result.frames[0])
        audio = getattr(result, "audio", None)
        if audio is None:
            return frames, None
        rate = int(pipeline.vocoder.config.output_sampling_rate)
        samples = np.asarray(audio[0].float().cpu().numpy(), dtype=np.float32)
        return frames, Audio(samples.reshape(-1, samples.shape[-1]), rate)


@dataclass(frozen=True)
class Audio:
    """Sound a model made: float samples, shape (channels, n), at ``rate`` Hz."""

    samples: np.ndarray[Any, np.dtype[np.float32]]
    rate: int


def _key_frames(
    model: DiffusersModel, first: Image.Image, last: Image.Image | None, size: tuple[int, int]
) -> dict[str, Any]:
    """How each pipeline takes its first (and last) frame, at the output's size."""
    first = first.resize(size)
    last = last.resize(size) if last is not None else None
    if model.pipeline == "ltx2":
        from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

        conditions = [LTX2VideoCondition(frames=first, index=0, strength=1.0)]
        if last is not None:
            conditions.append(LTX2VideoCondition(frames=last, index=-1, strength=1.0))
        return {"conditions": conditions, "frame_rate": float(model_grid(model).fps)}
    return {"image": first, "last_image": last}


def _fitted(audio: Audio, seconds: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The model's sound as stereo at the output's rate, exactly ``seconds`` long (the model's
    own length can differ by a few milliseconds: cut, or padded with silence)."""
    samples = audio.samples if audio.samples.shape[0] >= 2 else np.repeat(audio.samples, 2, 0)
    samples = samples[:2]
    count = round(samples.shape[1] * AUDIO_RATE / audio.rate)
    at = np.linspace(0, samples.shape[1] - 1, count) if count else np.zeros(0)
    resampled = np.stack([np.interp(at, np.arange(samples.shape[1]), ch) for ch in samples])
    wanted = round(seconds * AUDIO_RATE)
    fitted = np.zeros((2, wanted), dtype=np.float32)
    fitted[:, : min(wanted, count)] = np.clip(resampled[:, :wanted], -1.0, 1.0)
    return fitted


def model_grid(model: DiffusersModel) -> Grid:
    return for_model(
        model.pipeline,
        fps=model.fps,
        side_multiple=model.side_multiple,
        max_frames=model.max_frames,
    )


class _Steps:
    """Denoising steps across all passes: progress, and the place a cancel stops a job."""

    def __init__(self, ctx: RenderContext, total: int) -> None:
        self.ctx = ctx
        self.total = max(1, total)
        self.done = 0

    def callback(self, pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
        self.done += 1
        self.ctx.report_progress(0.95 * self.done / self.total)
        # Raised inside the pipeline: the job stops within one step and its tensors are freed.
        self.ctx.raise_if_cancelled()
        return tensors


def _rgb(path: Path, cover: tuple[int, int]) -> Image.Image:
    """An input image, upright RGB, decoded no larger than needed to cover ``cover``."""
    with SourceImage(path) as source:
        return source.rgb(cover)


def _kept(
    rendered: np.ndarray[Any, np.dtype[np.float32]], step: Pass
) -> Iterator[np.ndarray[Any, np.dtype[np.uint8]]]:
    """The new frames of a pass, as uint8 (a continuing pass's first frame is already out)."""
    start = 1 if step.continues else 0
    for frame in rendered[start : start + step.keep]:
        yield (np.clip(frame, 0.0, 1.0) * 255).round().astype(np.uint8)


def _cut_times(passes: list[Pass], grid: Grid) -> list[float]:
    """Seconds at which a new shot starts."""
    made, cuts = 0, []
    for previous, step in itertools.pairwise(passes):
        made += previous.keep
        if step.shot != previous.shot:
            cuts.append(made / grid.fps)
    return cuts


def _resampled(
    frames: Iterator[np.ndarray[Any, np.dtype[np.uint8]]], source_fps: Fraction, fps: int
) -> list[np.ndarray[Any, np.dtype[np.uint8]]]:
    """The source's frames at ``fps`` (nearest frame), as long as the source."""
    decoded = list(frames)
    count = round(len(decoded) / float(source_fps) * fps)
    return [decoded[min(len(decoded) - 1, int(i * float(source_fps) / fps))] for i in range(count)]


def _write(
    output: Path,
    frames: list[np.ndarray[Any, np.dtype[np.uint8]]],
    fps: int,
    encoder: EncoderSettings,
    *,
    audio: np.ndarray[Any, np.dtype[np.float32]] | None = None,
    audio_from: Path | None = None,
) -> None:
    height, width = frames[0].shape[:2]
    if audio_from is None:
        with MediaWriter(output, width, height, encoder, audio=audio is not None, fps=fps) as out:
            for frame in frames:
                out.write_frame(frame)
            if audio is not None:
                for start in range(0, audio.shape[1], AUDIO_RATE):
                    out.write_audio(audio[:, start : start + AUDIO_RATE])
        return
    with open_video(audio_from) as source:
        template = source.streams.audio[0]
        with MediaWriter(output, width, height, encoder, audio_template=template, fps=fps) as out:
            for frame in frames:
                out.write_frame(frame)
            for packet in source.demux(template):
                out.copy_audio_packet(packet)
