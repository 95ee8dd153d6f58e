"""Benchmark the preview engine against the encode-only floor measured in the same run.

For each case the engine renders in a fresh child process (so its peak RSS is its own), then
the *floor* is measured: the same number of frames at the same size, already decoded into
memory (from the render's own output, so the encoder sees the same content), encoded with
the same encoder settings, plus the same audio when the render has sound. The figure that
matters is ``render / floor``.

    python benchmarks/preview_bench.py            # all cases, best of 3
    python benchmarks/preview_bench.py --cases i2v-5s-last-sound

Cases use the documented sample media (``reelgate.samples``) at 1280x720.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np

from reelgate.engines.base import ImageToVideoSpec, RenderContext, VideoEditSpec
from reelgate.engines.mediaio import AUDIO_RATE, EncoderSettings, MediaWriter, probe
from reelgate.engines.preview import PreviewEngine
from reelgate.engines.preview.engine import DEFAULT_ENCODER
from reelgate.samples import write_sample_image, write_sample_video

CASES = {
    "i2v-5s-last-sound": "5 s image-to-video, first + last image, sound",
    "edit-5s-reference-keep-sound": "5 s edit of a 1280x720 source, a reference, sound kept",
    "i2v-15s-last-sound": "15 s image-to-video, first + last image, sound",
}


def _spec(case: str, media: Path) -> ImageToVideoSpec | VideoEditSpec:
    if case.startswith("edit"):
        return VideoEditSpec(
            prompt="a warm evening look like the reference",
            video=media / "source.mp4",
            reference_images=(media / "reference.png",),
            keep_original_sound=True,
            seed=1,
        )
    return ImageToVideoSpec(
        prompt="the camera pushes in as the street lights up, rain and footsteps",
        first_image=media / "first.png",
        last_image=media / "last.png",
        duration=15 if "15s" in case else 5,
        sound=True,
        multi_shot=False,
        shot_type="customize",
        shots=(),
        seed=42,
    )


def _prepare(media: Path) -> None:
    write_sample_image(media / "first.png", width=1280, height=720)
    write_sample_image(media / "last.png", width=1280, height=720, variant="last")
    write_sample_image(media / "reference.png", width=1280, height=720, variant="reference")
    write_sample_video(media / "source.mp4", seconds=5.0, width=1280, height=720)


def _child(case: str, media: Path, out_dir: Path, encoder: EncoderSettings) -> None:
    """Runs in its own process: one render, its wall time on stdout."""
    engine = PreviewEngine(encoder=encoder)
    spec = _spec(case, media)
    started = time.perf_counter()
    engine.render(spec, RenderContext(scratch_dir=out_dir))
    print(json.dumps({"seconds": time.perf_counter() - started}))


def _run_child(case: str, media: Path, out_dir: Path, preset: str) -> tuple[float, float]:
    """(render seconds, peak RSS in MB) of a render in a fresh process."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        __file__,
        "--preset",
        preset,
        "--child",
        case,
        str(media),
        str(out_dir),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{case}: render failed (exit {process.returncode})")
    return json.loads(output)["seconds"], usage.ru_maxrss / 1024


def _encode_floor(rendered: Path, scratch: Path, encoder: EncoderSettings) -> float:
    """Seconds to encode the render's frames (and audio) from memory, same settings."""
    with av.open(str(rendered)) as container:
        frames = [
            f.to_ndarray(format="yuv420p") for f in container.decode(container.streams.video[0])
        ]
    info = probe(rendered)
    audio = None
    if info.has_audio:
        with av.open(str(rendered)) as container:
            audio = np.concatenate(
                [f.to_ndarray() for f in container.decode(container.streams.audio[0])], axis=1
            ).astype(np.float32)
    started = time.perf_counter()
    with MediaWriter(
        scratch / "floor.mp4",
        info.width,
        info.height,
        encoder,
        audio=audio is not None,
        fps=info.fps,
    ) as writer:
        written = 0
        for frame in frames:
            writer.write_i420(frame)
            if audio is not None:
                upto = round(writer.frames_written / float(info.fps) * AUDIO_RATE)
                writer.write_audio(audio[:, written:upto])
                written = upto
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--preset", default=DEFAULT_ENCODER.preset, help="x264 preset (default: the engine's)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure; the fastest counts (default 3)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("CASE", "MEDIA", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    encoder = replace(DEFAULT_ENCODER, preset=args.preset)
    if args.child:
        case, media, out = args.child
        _child(case, Path(media), Path(out), encoder)
        return
    print(f"cores: {os.cpu_count()}, PyAV {av.__version__}, encoder: {encoder}")
    with tempfile.TemporaryDirectory(prefix="preview-bench-") as tmp:
        root = Path(tmp)
        media = root / "media"
        media.mkdir()
        _prepare(media)
        header = ("render s", "floor s", "ratio", "video s", "peak RSS MB")
        print(f"{'case':32} " + " ".join(f"{h:>11}" for h in header))
        for case in args.cases:
            out = root / case
            # Best of N for both figures: other load on the host only ever adds time.
            runs = [_run_child(case, media, out, encoder.preset) for _ in range(args.repeat)]
            seconds = min(run[0] for run in runs)
            rss = max(run[1] for run in runs)
            rendered = out / "preview.mp4"
            floor = min(_encode_floor(rendered, out, encoder) for _ in range(args.repeat))
            duration = probe(rendered).duration
            figures = (
                f"{seconds:.2f}",
                f"{floor:.2f}",
                f"{seconds / floor:.2f}",
                f"{duration:.1f}",
            )
            print(f"{case:32} " + " ".join(f"{f:>11}" for f in (*figures, f"{rss:.0f}")))


if __name__ == "__main__":
    main()
