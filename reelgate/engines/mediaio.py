"""PyAV helpers shared by engines: write H.264/AAC MP4s frame by frame, copy audio, probe.

Everything here streams: a writer takes one frame (or one audio slice) at a time and hands it
to the encoder, so memory does not grow with the length of the video. Output bytes depend only
on the inputs and the ``EncoderSettings``: the x264 thread count is fixed rather than derived
from the host's cores (x264's output depends on it), and the MP4 carries no creation time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import av
import av.audio.stream
import cv2
import numpy as np
import numpy.typing as npt

from reelgate.core.errors import FileProcessingFailed
from reelgate.media.budget import open_video as open_video  # shared with the fetcher

T = TypeVar("T")
RGBFrame = npt.NDArray[np.uint8]
#: Planar float samples in [-1, 1], shape (channels, samples).
AudioBlock = npt.NDArray[np.float32]

AUDIO_RATE = 48_000
AUDIO_CHANNELS = 2
#: Samples per AAC frame: the granularity at which an AAC track's length can be exact.
AAC_FRAME_SAMPLES = 1024


@dataclass(frozen=True)
class EncoderSettings:
    """How video is encoded. The defaults are the preview engine's."""

    fps: int = 24
    #: x264 preset; see docs/benchmarks.md for why this one.
    preset: str = "veryfast"
    crf: int = 20
    #: Fixed, so the same input gives the same bytes on any host.
    threads: int = 2
    #: Extra x264 settings. Macroblock-tree rate control is off because with it this x264
    #: build gave different bytes for the same frames from run to run (even with one thread).
    x264_params: str = "mbtree=0"
    audio_bitrate: int = 128_000


class MediaWriter:
    """An MP4 being written: one H.264 (yuv420p) stream and at most one audio stream.

    The audio stream is either encoded here (``audio=True``: stereo AAC at ``AUDIO_RATE``, fed
    with ``write_audio``) or copied packet for packet from ``audio_template`` (fed with
    ``copy_audio_packet``). Use as a context manager; leaving it normally flushes the encoders,
    leaving it by an exception just closes the file.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        settings: EncoderSettings = EncoderSettings(),
        *,
        audio: bool = False,
        audio_template: av.audio.stream.AudioStream | None = None,
        fps: Fraction | int | None = None,
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
        if audio and audio_template is not None:
            raise ValueError("encode audio or copy it, not both")
        self.width, self.height = width, height
        self._container = av.open(str(path), mode="w", format="mp4")
        try:
            self._video = self._container.add_stream(
                "libx264",
                rate=fps if fps is not None else settings.fps,
                options={
                    "preset": settings.preset,
                    "crf": str(settings.crf),
                    "x264-params": settings.x264_params,
                },
            )
            self._video.width, self._video.height = width, height
            self._video.pix_fmt = "yuv420p"
            self._video.codec_context.thread_count = settings.threads
            self._audio: av.audio.stream.AudioStream | None = None
            self._copied_audio: av.audio.stream.AudioStream | None = None
            if audio:
                self._audio = self._container.add_stream("aac", rate=AUDIO_RATE)
                self._audio.layout = "stereo"
                self._audio.bit_rate = settings.audio_bitrate
            elif audio_template is not None:
                self._copied_audio = self._container.add_stream_from_template(audio_template)
        except BaseException:
            self._container.close()
            raise
        self._audio_samples_written = 0
        self._frames_written = 0

    @property
    def frames_written(self) -> int:
        return self._frames_written

    def write_frame(self, rgb: RGBFrame) -> None:
        """Encode one RGB frame of the writer's size."""
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"frame is {rgb.shape}, writer is {self.height}x{self.width}x3")
        # OpenCV's I420 conversion (BT.601, limited range, as swscale's default) is several
        # times faster than letting the encoder convert RGB itself.
        self.write_i420(cast(RGBFrame, cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)))

    def write_i420(self, i420: npt.NDArray[np.uint8]) -> None:
        """Encode one I420 frame: shape (height * 3 / 2, width), Y then U then V planes."""
        if i420.shape != (self.height * 3 // 2, self.width):
            raise ValueError(f"I420 frame is {i420.shape}, writer is {self.width}x{self.height}")
        self.write_video_frame(i420_frame(i420))

    def write_video_frame(self, frame: av.VideoFrame) -> None:
        """Encode one yuv420p frame of the writer's size (see ``i420_frame``)."""
        if (frame.width, frame.height) != (self.width, self.height):
            raise ValueError(
                f"frame is {frame.width}x{frame.height}, writer is {self.width}x{self.height}"
            )
        frame.pts = self._frames_written
        self._frames_written += 1
        self._container.mux(self._video.encode(frame))

    def write_audio(self, block: AudioBlock) -> None:
        """Encode the next slice of the track (float32, shape (2, n), values in [-1, 1])."""
        if self._audio is None:
            raise ValueError("this writer has no encoded audio stream")
        planar = np.ascontiguousarray(block, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._audio_samples_written
        self._audio_samples_written += planar.shape[1]
        self._container.mux(self._audio.encode(frame))

    def copy_audio_packet(self, packet: av.Packet[Any]) -> None:
        """Mux a packet of the template's audio stream unchanged."""
        if self._copied_audio is None:
            raise ValueError("this writer has no copied audio stream")
        if packet.dts is None:  # a demuxer's end-of-stream marker, nothing to write
            return
        packet.stream = self._copied_audio
        self._container.mux(packet)

    def close(self, *, flush: bool = True) -> None:
        try:
            if flush:
                self._container.mux(self._video.encode(None))
                if self._audio is not None:
                    self._container.mux(self._audio.encode(None))
        finally:
            self._container.close()

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(flush=exc_type is None)


def i420_frame(i420: npt.NDArray[np.uint8]) -> av.VideoFrame:
    """An I420 array (shape (height * 3 / 2, width)) as a new yuv420p ``VideoFrame``.

    The pixels are copied, so the array may be reused as soon as this returns. Renderers
    call it on their frame thread, which leaves the encoding thread only the encoding.
    """
    return av.VideoFrame.from_ndarray(i420, format="yuv420p")


def yuv420p_planes(
    frame: av.VideoFrame,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Views of a yuv420p frame's Y, U and V planes, without copying.

    Rows may be padded (``line_size`` > width), so the views can have a row stride; writing
    to a view writes the frame. A decoder's frames may be its reference pictures: only read
    those.
    """
    if frame.format.name != "yuv420p":
        raise ValueError(f"frame is {frame.format.name}, not yuv420p")
    y, u, v = (
        np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)[
            :, : plane.width
        ]
        for plane in frame.planes
    )
    return y, u, v


@dataclass(frozen=True)
class MediaInfo:
    width: int
    height: int
    fps: Fraction
    frame_count: int
    #: Seconds of video (frames / fps).
    duration: float
    has_audio: bool
    audio_rate: int = 0
    audio_channels: int = 0


def probe(path: Path) -> MediaInfo:
    """Size, frame rate, frame count and audio of a video file, without decoding pictures."""
    with open_video(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path.name} has no video stream")
        video = container.streams.video[0]
        fps = Fraction(video.average_rate or video.guessed_rate or 0)
        frames = video.frames or sum(1 for p in container.demux(video) if p.size)
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            width=video.width,
            height=video.height,
            fps=fps,
            frame_count=frames,
            duration=float(frames / fps) if fps else 0.0,
            has_audio=audio is not None,
            audio_rate=audio.rate if audio is not None else 0,
            audio_channels=audio.channels if audio is not None else 0,
        )


def iter_rgb_frames(path: Path, size: tuple[int, int] | None = None) -> Iterator[RGBFrame]:
    """Decode a file's first video stream to RGB frames, one at a time, each scaled to ``size``
    (width, height) as it is decoded when given: only one full-size frame exists at a time."""
    width, height = size if size is not None else (None, None)
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in source_frames(container.decode(stream)):
            scaled = frame.reformat(width=width, height=height, format="rgb24")
            yield cast(RGBFrame, scaled.to_ndarray())


def iter_key_frames(path: Path, limit: int) -> Iterator[RGBFrame]:
    """Decode up to ``limit`` key frames to RGB: a cheap sample of a whole video (the first
    frame is always one)."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        for count, frame in enumerate(source_frames(container.decode(stream))):
            if count >= limit:
                return
            yield cast(RGBFrame, frame.to_ndarray(format="rgb24"))


def source_frames(items: Iterator[T]) -> Iterator[T]:
    """``items`` decoded (or demuxed) from an input file, with FFmpeg's errors as
    ``FileProcessingFailed``: the fetcher decoded only the start of the file, and a broken or
    hostile rest (a cut-off stream, a frame larger than the stream declared) is the input's
    fault, not the render's."""
    try:
        yield from items
    except av.FFmpegError as exc:
        reason = exc.strerror or type(exc).__name__
        # Named as the fetcher names its errors: the one input video is an edit's videoUrl.
        raise FileProcessingFailed(
            f"videoUrl: the video could not be decoded to its end ({reason})"
        ) from exc
