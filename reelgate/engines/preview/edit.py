"""Video edit: the source's frames, graded toward the references and the prompt's styles.

The output keeps the source's size, frame rate and frame count. With ``keep_original_sound``
the source's audio packets are copied into the output untouched (no re-encode); without it
the output has no audio stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias, cast

import av
import numpy as np

from reelgate.engines.base import RenderContext, VideoEditSpec
from reelgate.engines.mediaio import EncoderSettings, MediaWriter, iter_key_frames, probe
from reelgate.engines.preview import pipeline
from reelgate.engines.preview.frames import U8, FrameSize, load_rgb
from reelgate.engines.preview.grade import Grade, lab_stats
from reelgate.engines.preview.mark import PreviewMark

#: Key frames sampled for the source's colour statistics.
STATS_KEY_FRAMES = 8

#: What the frame thread hands the encoder: a graded I420 frame or a source audio packet.
Item: TypeAlias = "U8 | av.Packet[Any]"


def render_video_edit(
    spec: VideoEditSpec, ctx: RenderContext, output: Path, *, settings: EncoderSettings
) -> None:
    info = probe(spec.video)
    if info.width % 2 or info.height % 2:
        raise ValueError(f"the source is {info.width}x{info.height}; H.264 4:2:0 needs even sides")
    size = FrameSize(info.width, info.height)
    references = [load_rgb(path) for path in spec.reference_images]
    grade = Grade(
        spec.prompt,
        size,
        source=lab_stats(iter_key_frames(spec.video, STATS_KEY_FRAMES)),
        reference=lab_stats(references) if references else None,
    )
    mark = PreviewMark(size) if ctx.watermark else None
    keep_audio = spec.keep_original_sound and info.has_audio

    def items() -> Iterator[Item]:
        with av.open(str(spec.video)) as source:
            video = source.streams.video[0]
            video.thread_type = "AUTO"
            streams = [video, source.streams.audio[0]] if keep_audio else [video]
            for packet in source.demux(*streams):
                if packet.stream.type == "audio":
                    yield packet
                    continue
                for frame in packet.decode():
                    assert isinstance(frame, av.VideoFrame)
                    graded = grade.apply_i420(cast(U8, frame.to_ndarray(format="yuv420p")))
                    if mark is not None:
                        mark.apply(graded)
                    yield graded

    with av.open(str(spec.video)) as template_source:
        template = template_source.streams.audio[0] if keep_audio else None
        with MediaWriter(
            output, size.width, size.height, settings, audio_template=template, fps=info.fps
        ) as writer:

            def write(item: Item) -> None:
                if isinstance(item, np.ndarray):
                    writer.write_i420(item)
                else:
                    writer.copy_audio_packet(item)

            pipeline.run(
                items(),
                write,
                ctx,
                info.frame_count,
                counts=lambda item: isinstance(item, np.ndarray),
            )
