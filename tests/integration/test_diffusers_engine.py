"""The diffusers engine's real code path, offline on CPU, with tiny random-weight pipelines.

The pipelines are diffusers' own classes with tiny components built in code, saved to disk and
loaded back by the engine's loader exactly as an operator's weights are. Tasks go the whole way:
submitted over HTTP, claimed by a worker, rendered, stored, downloaded and decoded. The output is
noise; what is checked is the plumbing: frame counts, fps, sizes, audio, which images reach the
model, chaining, cancellation per step, GPU errors as task errors.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from reelgate.config import DiffusersModel, DiffusersSettings
from reelgate.core.errors import EngineUnavailable, TaskCancelled
from reelgate.engines.base import ImageToVideoSpec, RenderContext
from reelgate.engines.diffusers import tiny
from reelgate.engines.diffusers.engine import SYNTH_SOUND, DiffusersEngine
from reelgate.engines.diffusers.loader import PipelineCache
from reelgate.runtime import Runtime
from reelgate.samples import sample_image, write_sample_video
from reelgate.store.tables import TaskEvent
from reelgate.wire import Shot
from reelgate.worker.worker import Worker
from tests.conftest import LiveServer, make_settings, new_key

I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"
EDIT = "/openapi/v2/kling-video-o3-pro/video-edit"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny pipelines, saved once as an operator's weight directories would be."""
    root = tmp_path_factory.mktemp("weights")
    return {kind: tiny.save(kind, root / kind) for kind in tiny.KINDS}


def diffusers_settings(weights: dict[str, Path]) -> DiffusersSettings:
    tiny_run = {"dtype": "float32", "steps": 2, "guidance_scale": 1.0, "long_side": 32}
    return DiffusersSettings(
        device="cpu",
        models={
            "wan-i2v": DiffusersModel(
                path=weights["wan-i2v"], pipeline="wan-i2v", features=["first_frame"], **tiny_run
            ),
            "wan-flf": DiffusersModel(
                path=weights["wan-flf2v"], pipeline="wan-i2v", features=["last_frame"], **tiny_run
            ),
            "wan-vace": DiffusersModel(
                path=weights["wan-vace"], pipeline="wan-vace", features=["edit"], **tiny_run
            ),
        },
    )


class Recorder:
    """Stands between the engine and a real pipeline, keeping what each call received."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.calls: list[dict[str, Any]] = []
        self.steps = 0
        self.fail_with: BaseException | None = None

    def __call__(self, **inputs: Any) -> Any:
        self.calls.append(inputs)
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        callback = inputs.pop("callback_on_step_end")

        def count(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
            self.steps += 1
            return callback(pipeline, step, timestep, tensors)

        return self.pipeline(**inputs, callback_on_step_end=count)

    def __getattr__(self, name: str) -> Any:  # the pipeline's components (e.g. its vocoder)
        return getattr(self.pipeline, name)


#: A failure the next pipeline loaded raises on its first call, by model name.
FAIL_FIRST_CALL: dict[str, BaseException] = {}


@pytest.fixture
def recorders(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recorder]:
    """The engine's pipelines, loaded by its own loader, wrapped to record their calls."""
    found: dict[str, Recorder] = {}
    load = PipelineCache.load

    def recorded(cache: PipelineCache, name: str) -> Recorder:
        found[name] = Recorder(load(cache, name))
        found[name].fail_with = FAIL_FIRST_CALL.pop(name, None)
        return found[name]

    monkeypatch.setattr(PipelineCache, "load", recorded)
    return found


@contextmanager
def serving(tmp_path: Path, settings: DiffusersSettings) -> Iterator[Any]:
    """A reelgate with the diffusers engine: API over HTTP, one worker, and a key."""
    runtime = Runtime.open(
        make_settings(
            tmp_path / "data",
            f"sqlite:///{tmp_path / 'reelgate.db'}",
            engine="diffusers",
            diffusers=settings,
        )
    )
    stop = threading.Event()
    worker = Worker(runtime, concurrency=1, shutdown_grace_seconds=0)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with LiveServer(runtime) as server:
            key = new_key(runtime)
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as http:
                yield http, runtime
    finally:
        stop.set()
        thread.join(60)
        runtime.close()


@pytest.fixture
def gpu_host(
    tmp_path: Path, weights: dict[str, Path], recorders: dict[str, Recorder]
) -> Iterator[Any]:
    with serving(tmp_path, diffusers_settings(weights)) as (http, runtime):
        yield http, runtime, recorders


def upload(http: httpx.Client, data: bytes, name: str = "in.png") -> str:
    answer = http.post("/openapi/v2/media/upload/binary", files={"file": (name, data)}).json()
    url: str = answer["data"]["download_url"]
    return url


def png(colour: tuple[int, int, int] | None = None) -> bytes:
    image = sample_image(400, 300) if colour is None else Image.new("RGB", (400, 300), colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    task_id = http.post(path, json=body).json()["taskId"]
    for _ in range(1200):
        task: dict[str, Any] = http.post("/openapi/v2/query", json={"taskId": task_id}).json()
        if task["status"] in ("SUCCESS", "FAILED", "CANCEL"):
            return task
        threading.Event().wait(0.1)
    raise AssertionError(f"task {task_id} did not end")


def probe(http: httpx.Client, task: dict[str, Any]) -> dict[str, Any]:
    assert task["status"] == "SUCCESS", task
    data = httpx.get(task["results"][0]["url"]).content
    with av.open(io.BytesIO(data), mode="r") as container:
        video = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
        container.seek(0)
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_seconds = (
            float(audio.duration * audio.time_base)
            if audio is not None and audio.duration and audio.time_base
            else 0.0
        )
        return {
            "frames": len(frames),
            "fps": float(video.average_rate or 0),
            "size": (video.codec_context.width, video.codec_context.height),
            "audio_seconds": audio_seconds,
            "first": frames[0],
        }


def history(runtime: Runtime) -> list[str]:
    with runtime.db.read() as session:
        return [event.detail for event in session.query(TaskEvent).order_by(TaskEvent.id)]


def test_first_frame_only_renders_the_requested_length_at_the_models_grid(gpu_host: Any) -> None:
    http, _runtime, recorders = gpu_host
    body = {
        "prompt": "a street",
        "firstImageUrl": upload(http, png()),
        "duration": 3,
        "sound": False,
    }
    clip = probe(http, run(http, I2V, body))
    assert (clip["frames"], clip["fps"], clip["size"]) == (48, 16.0, (32, 32))  # 3 s at 16 fps
    assert clip["audio_seconds"] == 0
    (call,) = recorders["wan-i2v"].calls
    assert call["num_frames"] == 49 and (call["height"], call["width"]) == (32, 32)  # 4k+1
    assert "last_image" not in call


def test_the_last_frame_reaches_the_model_and_sound_is_honest_about_its_source(
    gpu_host: Any,
) -> None:
    http, runtime, recorders = gpu_host
    body = {
        "prompt": "a street",
        "firstImageUrl": upload(http, png((250, 10, 10))),
        "lastImageUrl": upload(http, png((10, 10, 250))),
        "duration": 3,
        "sound": True,
    }
    clip = probe(http, run(http, I2V, body))
    assert (clip["frames"], clip["fps"]) == (48, 16.0)
    assert abs(clip["audio_seconds"] - 3) < 0.05
    (call,) = recorders["wan-flf"].calls
    assert call["image"].getpixel((0, 0)) == (250, 10, 10)
    assert call["last_image"].getpixel((0, 0)) == (10, 10, 250)
    assert any(SYNTH_SOUND in detail for detail in history(runtime))


def test_a_15_second_request_is_chained_from_each_pass_last_frame(gpu_host: Any) -> None:
    http, _runtime, recorders = gpu_host
    body = {"prompt": "a long street", "firstImageUrl": upload(http, png()), "duration": 15}
    clip = probe(http, run(http, I2V, body))
    assert (clip["frames"], clip["fps"]) == (240, 16.0)  # 15 s within one frame
    calls = recorders["wan-i2v"].calls
    assert [c["num_frames"] for c in calls] == [81, 81, 81]
    for earlier, later in itertools.pairwise(calls):
        # Each pass starts from an image the previous pass made, not from the request's image.
        assert later["image"].tobytes() != earlier["image"].tobytes()


def test_multi_shot_renders_each_shot_with_its_prompt(gpu_host: Any) -> None:
    http, _runtime, recorders = gpu_host
    body = {
        "prompt": "ignored when multiShot",
        "firstImageUrl": upload(http, png()),
        "duration": 6,
        "multiShot": True,
        "multiPrompt": [{"prompt": "wide street", "duration": 3}, {"prompt": "close face"}],
    }
    clip = probe(http, run(http, I2V, body))
    assert clip["frames"] == 96
    assert [c["prompt"] for c in recorders["wan-i2v"].calls] == ["wide street", "close face"]


def test_an_edit_with_four_references_keeps_the_original_sound(
    gpu_host: Any, tmp_path: Path
) -> None:
    http, _runtime, recorders = gpu_host
    source = write_sample_video(tmp_path / "in.mp4", seconds=3, width=160, height=120)
    refs = [upload(http, png((40 * n, 200, 0))) for n in range(4)]
    body = {
        "prompt": "make it green",
        "videoUrl": upload(http, source.read_bytes(), "in.mp4"),
        "imageUrls": refs,
        "keepOriginalSound": True,
    }
    task = run(http, EDIT, body)
    clip = probe(http, task)
    assert (clip["frames"], clip["fps"]) == (48, 16.0)  # the source's 3 s at the model's fps
    (call,) = recorders["wan-vace"].calls
    assert len(call["reference_images"]) == 4
    assert [r.getpixel((0, 0)) for r in call["reference_images"]] == [
        (40 * n, 200, 0) for n in range(4)
    ]
    assert len(call["video"]) == len(call["mask"]) == call["num_frames"] == 49
    out = httpx.get(task["results"][0]["url"]).content
    assert audio_packets(out) == audio_packets(source.read_bytes())  # bit for bit


def audio_packets(mp4: bytes) -> list[bytes]:
    with av.open(io.BytesIO(mp4), mode="r") as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_a_gpu_out_of_memory_fails_the_task_with_the_setting_that_helps(gpu_host: Any) -> None:
    import torch

    http, _runtime, _recorders = gpu_host
    FAIL_FIRST_CALL["wan-i2v"] = torch.OutOfMemoryError("CUDA out of memory")
    image = upload(http, png())
    body = {"prompt": "a street", "firstImageUrl": image, "duration": 3, "sound": False}
    failed = run(http, I2V, body)
    assert (failed["status"], failed["errorCode"]) == ("FAILED", "1015")
    assert (
        "offload" in failed["errorMessage"]
        and "REELGATE_DIFFUSERS__MODELS" in failed["errorMessage"]
    )
    assert probe(http, run(http, I2V, body))["frames"] == 48  # the worker lives on


def test_a_cancel_stops_the_job_within_one_denoising_step(
    weights: dict[str, Path], recorders: dict[str, Recorder], tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, "sqlite://", diffusers=diffusers_settings(weights))
    settings.diffusers.models["wan-i2v"].steps = 20
    engine = DiffusersEngine(settings)
    first = tmp_path / "first.png"
    first.write_bytes(png())
    spec = ImageToVideoSpec(
        prompt="a street",
        first_image=first,
        last_image=None,
        duration=3,
        sound=False,
        multi_shot=False,
        shot_type="customize",
        shots=(Shot(prompt="a street", seconds=3),),
        seed=7,
    )
    cancelled = threading.Event()
    progress: list[float] = []

    def report(fraction: float) -> None:
        progress.append(fraction)
        if len(progress) == 3:
            cancelled.set()  # the owner cancels while step 3 runs

    ctx = RenderContext(scratch_dir=tmp_path, report_progress=report, is_cancelled=cancelled.is_set)
    with pytest.raises(TaskCancelled):
        engine.render(spec, ctx)
    assert recorders["wan-i2v"].steps == 3  # not one step more of the 20
    assert progress == sorted(progress) and progress[-1] < 0.2


def test_missing_weights_say_where_they_were_looked_for(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        "sqlite://",
        diffusers=DiffusersSettings(
            device="cpu",
            models={
                "wan": DiffusersModel(
                    path=tmp_path / "nothing", pipeline="wan-i2v", features=["first_frame"]
                )
            },
        ),
    )
    engine = DiffusersEngine(settings)
    ready, why = engine.ready()
    assert not ready and "weights missing for wan" in why and "no GPU" in why
    with pytest.raises(EngineUnavailable, match=r"model_index\.json"):
        engine.cache.get("wan")


def test_engines_lists_the_open_models_their_weights_and_the_gpu(
    weights: dict[str, Path], tmp_path: Path
) -> None:
    models = {
        "wan-i2v": {
            "path": str(weights["wan-i2v"]),
            "pipeline": "wan-i2v",
            "features": ["first_frame"],
        },
        "vace": {"path": str(tmp_path / "absent"), "pipeline": "wan-vace", "features": ["edit"]},
    }
    env = {
        **os.environ,
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
        "REELGATE_DIFFUSERS__MODELS": json.dumps(models),
    }
    listing = subprocess.run(
        [sys.executable, "-m", "reelgate", "engines", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    row = {r["name"]: r for r in json.loads(listing.stdout)}["diffusers"]
    assert not row["ready"] and "weights missing for vace" in row["detail"]
    assert "no GPU" in row["detail"]
    present = {m["name"]: m["weightsPresent"] for m in row["openModels"]}
    assert present == {"wan-i2v": True, "vace": False}


def test_the_gpu_smoke_benchmark_runs_each_model_on_the_tiny_pipelines(
    weights: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gpu_smoke", root / "benchmarks" / "gpu_smoke.py")
    assert spec is not None and spec.loader is not None
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    weights_root = weights["wan-i2v"].parent
    assert smoke.main(["--tiny", "--weights", str(weights_root)]) == 0
    out = capsys.readouterr().out
    kinds = [[kind] for kind in tiny.KINDS]
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in kinds]
    assert [row[0] for row in rows] == ["wan-i2v", "wan-flf2v", "wan-vace", "ltx2"]
    frames = {row[0]: row[3] for row in rows}
    assert frames == {"wan-i2v": "48", "wan-flf2v": "48", "wan-vace": "48", "ltx2": "72"}
    assert all(float(row[4]) > 0 and float(row[5]) > 0 for row in rows)  # seconds, MB


def test_sound_through_ltx2_is_made_with_the_video_when_enabled(
    tmp_path: Path, weights: dict[str, Path], recorders: dict[str, Recorder]
) -> None:
    ltx2 = DiffusersModel(
        path=weights["ltx2"],
        pipeline="ltx2",
        features=["first_frame", "last_frame", "sound"],
        dtype="float32",
        steps=2,
        guidance_scale=1.0,
        long_side=32,
    )
    settings = DiffusersSettings(device="cpu", ltx2_audio=True, models={"ltx2": ltx2})
    with serving(tmp_path, settings) as (http, runtime):
        body = {
            "prompt": "fireworks over the street",
            "firstImageUrl": upload(http, png((250, 10, 10))),
            "lastImageUrl": upload(http, png((10, 10, 250))),
            "duration": 3,
            "sound": True,
        }
        clip = probe(http, run(http, I2V, body))
        assert (clip["frames"], clip["fps"], clip["size"]) == (72, 24.0, (32, 32))  # 24 fps grid
        assert abs(clip["audio_seconds"] - 3) < 0.05
        (call,) = recorders["ltx2"].calls
        assert call["num_frames"] == 73 and call["frame_rate"] == 24.0  # 8k+1 frames
        first, last = call["conditions"]
        assert (first.index, last.index) == (0, -1)
        assert last.frames.getpixel((0, 0)) == (10, 10, 250)
        notes = history(runtime)
        assert any("generated with the video by ltx2" in n for n in notes)
        assert not any(SYNTH_SOUND in n for n in notes)
