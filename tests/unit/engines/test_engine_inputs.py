"""Input media as engines decode it: images no larger than the output needs, video frame by
frame, and nothing larger than a stream declared."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelgate.core.errors import FileProcessingFailed, InvalidParameters
from reelgate.engines.images import SourceImage, cover_long_side
from reelgate.engines.mediaio import iter_rgb_frames
from reelgate.engines.preview import PreviewEngine
from reelgate.engines.preview.frames import FrameSize, fit_to_frame, load_rgb
from tests import hostile_corpus
from tests.memory import MB, PeakRss
from tests.unit.engines.preview_support import Inputs, edit, i2v, psnr, render


def _write(tmp_path: Path, name: str, body: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(body)
    return path


def _pillow(mode: str, size: tuple[int, int], fmt: str = "PNG", **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 1).save(buffer, fmt, **save)
    return buffer.getvalue()


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "reduced"),
    # A JPEG is decoded at 1/8 scale, then halved; anything else decoded whole, divided by 23.
    [("JPEG", (375, 250)), ("PNG", (261, 174))],
)
def test_a_large_image_is_decoded_just_large_enough(
    tmp_path: Path, fmt: str, reduced: tuple[int, int]
) -> None:
    path = _write(tmp_path, f"big.{fmt.lower()}", hostile_corpus.image(6000, 4000, fmt))
    cover = FrameSize(256, 170)
    with SourceImage(path) as source:
        assert source.size == (6000, 4000)
        small = source.rgb((cover.width, cover.height))
    assert small.size == reduced
    assert small.width >= cover.width and small.height >= cover.height
    # What the frame shows is the same as from the whole image.
    whole = fit_to_frame(load_rgb(path), cover)
    assert psnr(fit_to_frame(np.asarray(small, dtype=np.uint8), cover), whole) > 35


@pytest.mark.parametrize(
    "body",
    [
        _pillow("P", (900, 600)),
        _pillow("P", (900, 600), transparency=0),
        _pillow("1", (900, 600)),
        hostile_corpus.png_of_zeros(900, 600, depth=16, colour=0),
        hostile_corpus.png_of_zeros(900, 600, depth=16, colour=6),
        _pillow("CMYK", (900, 600), "JPEG"),
    ],
    ids=["palette", "palette-alpha", "1-bit", "grey-16", "rgba-16", "cmyk"],
)
def test_every_mode_is_reduced_to_rgb(tmp_path: Path, body: bytes) -> None:
    path = _write(tmp_path, "mode.img", body)
    with SourceImage(path) as source:
        small = source.rgb((100, 60))
    assert small.mode == "RGB"
    assert 100 <= small.width < 200 and 60 <= small.height < 120


def test_exif_orientation_is_applied_and_the_cover_is_as_displayed(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated a quarter turn: portrait
    body = io.BytesIO()
    Image.fromarray(np.zeros((400, 800, 3), dtype=np.uint8)).save(body, "JPEG", exif=exif)
    path = _write(tmp_path, "turned.jpg", body.getvalue())
    with SourceImage(path) as source:
        assert source.size == (400, 800)
        small = source.rgb((100, 200))
    assert small.size == (100, 200)


def test_cover_long_side() -> None:
    assert cover_long_side((6000, 4000), 256) == (256, 171)
    assert cover_long_side((100, 50), 256) == (100, 50)  # never larger


def test_pillows_bomb_guard_is_an_input_error_in_engines_too(tmp_path: Path) -> None:
    """Engines only see files the fetcher checked; should one pass anyway, Pillow's error (and
    its warning, an error in these tests) is an input error, not a crash."""
    for side in (10_000, 20_000):  # Pillow warns above 89 megapixels, fails above 179
        path = _write(tmp_path, f"{side}.png", hostile_corpus.png_of_zeros(side, side, rows=1))
        with pytest.raises(InvalidParameters, match="too many pixels"):
            SourceImage(path)


@pytest.mark.parametrize(
    ("fmt", "limit"),
    # Decoding either whole and converting it, as before, peaked at about 410 MB.
    [("JPEG", 24 * MB), ("PNG", 108 * MB)],
)
def test_peak_memory_of_a_large_legal_image_stays_bounded(
    tmp_path: Path, fmt: str, limit: int
) -> None:
    """A 24-megapixel image (72 MB as RGB) rendered 256 px wide: a JPEG is never whole in
    memory; a PNG is, once (as Pillow holds it, 96 MB), and no copy of it is made."""
    path = _write(tmp_path, f"photo.{fmt.lower()}", hostile_corpus.image(6000, 4000, fmt))
    cover = FrameSize(256, 170)
    with PeakRss() as peak:
        frame = fit_to_frame(load_rgb(path, cover), cover)
    assert frame.shape == (170, 256, 3)
    assert peak.growth < limit, str(peak)


def test_an_image_to_video_render_of_a_large_photo_stays_small(
    tmp_path: Path, inputs: Inputs
) -> None:
    path = _write(tmp_path, "photo.jpg", hostile_corpus.image(6000, 4000, "JPEG"))
    engine = PreviewEngine(long_side=128)
    with PeakRss() as peak:
        out = render(engine, i2v(inputs, first_image=path, last_image=path), tmp_path / "out")
    with av.open(str(out), mode="r") as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (128, 86)
    assert peak.growth < 60 * MB, str(peak)


# --- video --------------------------------------------------------------------------------------


def test_frames_are_scaled_as_they_are_decoded(tmp_path: Path, inputs: Inputs) -> None:
    frames = list(iter_rgb_frames(inputs.video, (64, 36)))
    assert len(frames) == 72
    assert {frame.shape for frame in frames} == {(36, 64, 3)}


def test_a_stream_that_grows_mid_way_is_refused_at_the_larger_frame(tmp_path: Path) -> None:
    path = _write(tmp_path, "switching.mp4", hostile_corpus.size_switching_mp4(tmp_path))
    with av.open(str(path), mode="r") as container:  # unguarded: the file really does switch
        sizes = {(f.width, f.height) for f in container.decode(container.streams.video[0])}
    assert sizes == {(64, 48), (2048, 2048)}
    frames = iter_rgb_frames(path)
    with pytest.raises(FileProcessingFailed, match="could not be decoded to its end"):
        for frame in frames:
            assert frame.shape == (48, 64, 3)


def test_an_edit_of_a_source_that_breaks_off_is_a_file_error(
    tmp_path: Path, inputs: Inputs
) -> None:
    """The fetcher decodes the start of a video; a cut-off rest is found by the render and
    answered 1013 like any undecodable input, not 1015 like a render failure."""
    path = _write(tmp_path, "cut.mp4", hostile_corpus.truncated_faststart_mp4(tmp_path))
    with pytest.raises(FileProcessingFailed) as info:
        render(PreviewEngine(long_side=128), edit(inputs, video=path), tmp_path / "out")
    assert info.value.code == "1013"
