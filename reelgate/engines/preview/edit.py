"""Video edit: the source's frames, graded toward the references and the prompt's styles.

The output keeps the source's size, frame rate and frame count. With ``keep_original_sound``
the source's audio packets are copied into the output untouched (no re-encode); without it
the output has no audio stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import av

from reelgate.engines.base import RenderContext, VideoEditSpec
from reelgate.engines.images import SourceImage, cover_long_side
from reelgate.engines.mediaio import (
    EncoderSettings,
    MediaWriter,
    iter_key_frames,
    open_video,
    probe,
    source_frames,
    yuv420p_planes,
)
from reelgate.engines.preview import pipeline
from reelgate.engines.preview.frames import U8, FrameSize, load_covering
from reelgate.engines.preview.grade import STATS_LONG_SIDE, Grade, lab_stats, stats_copy
from reelgate.engines.preview.mark import PreviewMark

#: Key frames sampled for the source's colour statistics.
STATS_KEY_FRAMES = 8

#: What the frame thread hands the encoder: a graded frame or a source audio packet.
Item: TypeAlias = "av.VideoFrame | av.Packet[Any]"


def render_video_edit(
    spec: VideoEditSpec, ctx: RenderContext, output: Path, *, settings: EncoderSettings
) -> None:
    info = probe(spec.video)
    if info.width % 2 or info.height % 2:
        raise ValueError(f"the source is {info.width}x{info.height}; H.264 4:2:0 needs even sides")
    size = FrameSize(info.width, info.height)
    references = [_reference(path) for path in spec.reference_images]
    key_frames = [stats_copy(rgb) for rgb in iter_key_frames(spec.video, STATS_KEY_FRAMES)]
    grade = Grade(
        spec.prompt,
        size,
        source=lab_stats(key_frames),
        reference=lab_stats(references) if references else None,
        palette=key_frames,
    )
    mark = PreviewMark(size) if ctx.watermark else None
    keep_audio = spec.keep_original_sound and info.has_audio

    def items() -> Iterator[Item]:
        with open_video(spec.video) as source:
            video = source.streams.video[0]
            # One decoding thread: the encoder keeps both cores busy, and frame threading
            # only adds CPU time (decoding runs beside the encoder on this thread anyway).
            video.codec_context.thread_count = 1
            streams = [video, source.streams.audio[0]] if keep_audio else [video]
            for item in source_frames(_decoded(source.demux(*streams))):
                if not isinstance(item, av.VideoFrame):
                    yield item
                    continue
                frame = item
                if (frame.width, frame.height) != (size.width, size.height):
                    # A stream may change its size mid-way (within what its decoder admits);
                    # the output keeps the size it started with.
                    frame = frame.reformat(size.width, size.height, format="yuv420p")
                elif frame.format.name != "yuv420p":
                    frame = frame.reformat(format="yuv420p")
                # Read the decoded planes and write the graded ones straight into the
                # frame the encoder gets: no copies of whole frames.
                graded = av.VideoFrame(size.width, size.height, "yuv420p")
                out = yuv420p_planes(graded)
                grade.apply_planes(yuv420p_planes(frame), out)
                if mark is not None:
                    mark.apply_planes(*out)
                yield graded

    with open_video(spec.video) as template_source:
        template = template_source.streams.audio[0] if keep_audio else None
        with MediaWriter(
            output, size.width, size.height, settings, audio_template=template, fps=info.fps
        ) as writer:

            def write(item: Item) -> None:
                if isinstance(item, av.VideoFrame):
                    writer.write_video_frame(item)
                else:
                    writer.copy_audio_packet(item)

            pipeline.run(
                items(),
                write,
                ctx,
                info.frame_count,
                counts=lambda item: isinstance(item, av.VideoFrame),
            )


def _reference(path: Path) -> U8:
    """A reference image's statistics copy, decoded no larger than that copy needs: up to four
    full-size references would otherwise be held at once."""
    with SourceImage(path) as source:
        cover = cover_long_side(source.size, STATS_LONG_SIDE)
        return stats_copy(load_covering(source, FrameSize(*cover)))


def _decoded(packets: Iterator[av.Packet[Any]]) -> Iterator[Item]:
    """Audio packets as they are, video packets decoded into their frames."""
    for packet in packets:
        if packet.stream.type == "audio":
            yield packet
            continue
        for frame in packet.decode():
            assert isinstance(frame, av.VideoFrame)
            yield frame
