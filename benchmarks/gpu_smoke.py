"""Run every configured open model once at its smallest size: seconds per clip, peak memory.

On a GPU host, after setting ``REELGATE_DIFFUSERS__MODELS`` (see docs/engines.md)::

    python benchmarks/gpu_smoke.py                 # each model once, 3 s clips
    python benchmarks/gpu_smoke.py --seconds 5

With ``--tiny`` it builds the tiny random-weight pipelines instead (no weights, any CPU): the
same code path, used by the test suite to keep this script working.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from reelgate.config import DiffusersModel, DiffusersSettings, Settings
from reelgate.engines.base import ImageToVideoSpec, RenderContext, RenderSpec, VideoEditSpec
from reelgate.engines.diffusers import tiny
from reelgate.engines.diffusers.engine import DiffusersEngine, model_grid
from reelgate.engines.diffusers.loader import device_of, import_torch
from reelgate.samples import write_sample_image, write_sample_video
from reelgate.wire import Shot


def tiny_models(root: Path, saved: Path | None = None) -> dict[str, DiffusersModel]:
    """The tiny pipelines as models: built into ``root``, or the ones already in ``saved``."""
    small = {"dtype": "float32", "steps": 2, "guidance_scale": 1.0, "long_side": 32}
    features = {
        "wan-i2v": ["first_frame"],
        "wan-flf2v": ["last_frame"],
        "wan-vace": ["edit"],
        "ltx2": ["last_frame", "sound"],
    }
    pipelines = {
        "wan-i2v": "wan-i2v",
        "wan-flf2v": "wan-i2v",
        "wan-vace": "wan-vace",
        "ltx2": "ltx2",
    }
    return {
        kind: DiffusersModel(
            path=saved / kind if saved else tiny.save(kind, root / "weights" / kind),
            pipeline=pipelines[kind],
            features=features[kind],
            **small,
        )
        for kind in tiny.KINDS
    }


def spec_for(model: DiffusersModel, seconds: int, media: Path) -> RenderSpec:
    first = write_sample_image(media / "first.png", width=640, height=360)
    if "edit" in model.features:
        video = write_sample_video(media / "source.mp4", seconds=seconds, width=320, height=180)
        return VideoEditSpec("a watercolour street", video, (first,), True, seed=1)
    last = write_sample_image(media / "last.png", width=640, height=360, variant="last")
    return ImageToVideoSpec(
        prompt="a girl walks down a lantern street",
        first_image=first,
        last_image=last if "last_frame" in model.features else None,
        duration=seconds,
        sound="sound" in model.features,
        multi_shot=False,
        shot_type="customize",
        shots=(Shot(prompt="a girl walks down a lantern street", seconds=seconds),),
        seed=1,
    )


def peak_memory_mb(device: str) -> float:
    torch = import_torch()
    if device.startswith("cuda"):
        return float(torch.cuda.max_memory_allocated()) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak (KiB)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight pipelines")
    parser.add_argument("--seconds", type=int, default=3, help="clip length (3-15)")
    parser.add_argument("--weights", type=Path, help="with --tiny: pipelines saved there before")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reelgate-smoke-") as scratch:
        root = Path(scratch)
        settings = Settings()
        if args.tiny:
            tiny_settings = DiffusersSettings(
                device="cpu", ltx2_audio=True, models=tiny_models(root, args.weights)
            )
            settings = settings.model_copy(update={"diffusers": tiny_settings})
        if not settings.diffusers.models:
            print("no model configured: set REELGATE_DIFFUSERS__MODELS, or pass --tiny")
            return 2
        engine = DiffusersEngine(settings)
        ready, why = engine.ready()
        print(f"diffusers engine: {why}")
        if not ready:
            return 1
        device = device_of(settings.diffusers)
        header = ("model", "pipeline", "size", "frames", "seconds", "peak MB")
        print("{:<16} {:<10} {:>9} {:>6} {:>8} {:>8}".format(*header))
        for name, model in settings.diffusers.models.items():
            # One model at a time: the others are left out of the engine's choice.
            alone = settings.diffusers.model_copy(update={"models": {name: model}})
            engine = DiffusersEngine(settings.model_copy(update={"diffusers": alone}))
            media = root / "clips" / name
            media.mkdir(parents=True)
            spec = spec_for(model, args.seconds, media)
            engine.cache.get(name)  # loading is not part of a clip's time
            if device.startswith("cuda"):
                import_torch().cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            engine.render(spec, RenderContext(scratch_dir=media))
            took = time.perf_counter() - started
            grid = model_grid(model)
            width, height = grid.size(640, 360, model.long_side)
            frames = round(args.seconds * grid.fps)
            print(
                f"{name:<16} {model.pipeline:<10} {f'{width}x{height}':>9} {frames:>6} "
                f"{took:>8.2f} {peak_memory_mb(device):>8.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
