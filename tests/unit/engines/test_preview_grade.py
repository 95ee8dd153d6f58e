"""The edit grade's two ways of applying itself: fitted pair tables and the LAB round trip."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from reelgate.engines.mediaio import iter_key_frames, yuv420p_planes
from reelgate.engines.preview.frames import FrameSize, load_rgb, planes
from reelgate.engines.preview.grade import Grade, graded_yuv, lab_stats, stats_copy
from tests.unit.engines.preview_support import Inputs


def _frames(inputs: Inputs, every: int = 12) -> list[np.ndarray]:
    with av.open(str(inputs.video)) as container:
        return [
            frame.to_ndarray(format="yuv420p")
            for index, frame in enumerate(container.decode(video=0))
            if index % every == 0
        ]


def _grade(inputs: Inputs, prompt: str, *, reference: bool) -> Grade:
    frames = _frames(inputs)
    height = frames[0].shape[0] * 2 // 3
    size = FrameSize(frames[0].shape[1], height)
    palette = [stats_copy(rgb) for rgb in iter_key_frames(inputs.video, 8)]
    return Grade(
        prompt,
        size,
        source=lab_stats(palette),
        reference=lab_stats([load_rgb(inputs.reference)]) if reference else None,
        palette=palette,
    )


@pytest.mark.parametrize(
    ("prompt", "reference"),
    [
        ("match the reference", True),
        ("a warm evening look like the reference", True),
        ("make it nicer", False),
        ("sepia", False),
        ("black and white", False),
        ("cold winter, vivid", False),
    ],
)
def test_pair_tables_match_the_lab_grade(inputs: Inputs, prompt: str, reference: bool) -> None:
    """Against the LAB grade of every pixel, the tables stay within a level or so on
    average, and a few levels almost everywhere (the 8-bit LAB steps alone are up to about
    two levels after a strong transfer)."""
    grade = _grade(inputs, prompt, reference=reference)
    assert not grade.spatial
    for frame in _frames(inputs):
        for got, want in zip(planes(grade.apply_i420(frame)), _exact(grade, frame), strict=True):
            error = np.abs(got - want)
            assert error.mean() < 1.5
            assert np.percentile(error, 99) <= 8


def _exact(grade: Grade, frame: np.ndarray) -> list[np.ndarray]:
    """The LAB grade per pixel: luma from each full-size pixel (chroma upsampled), chroma
    from each chroma sample (luma averaged)."""
    luma, u, v = planes(frame)
    full = (luma.shape[1], luma.shape[0])
    half = (u.shape[1], u.shape[0])
    up = [cv2.resize(p, full, interpolation=cv2.INTER_LINEAR) for p in (u, v)]
    luma_half = cv2.resize(luma, half, interpolation=cv2.INTER_AREA)
    yuv_full = np.asarray(cv2.merge([luma, *up]), dtype=np.uint8).reshape(-1, 1, 3)
    yuv_half = np.asarray(cv2.merge([luma_half, u, v]), dtype=np.uint8).reshape(-1, 1, 3)
    graded_full = graded_yuv(grade.lut, yuv_full)
    graded_half = graded_yuv(grade.lut, yuv_half)
    return [
        np.rint(graded_full[:, 0]).reshape(luma.shape),
        np.rint(graded_half[:, 1]).reshape(u.shape),
        np.rint(graded_half[:, 2]).reshape(v.shape),
    ]


@pytest.mark.parametrize("prompt", ["cartoon", "vintage", "match the reference"])
def test_padded_planes_grade_like_contiguous_frames(inputs: Inputs, prompt: str) -> None:
    """Decoded and encoder frames may pad their rows; grading their plane views must give
    the same pixels as grading a contiguous I420 array."""
    grade = _grade(inputs, prompt, reference=True)
    assert grade.spatial == (prompt != "match the reference")
    frame = _frames(inputs)[0]
    height, width = frame.shape[0] * 2 // 3, frame.shape[1]
    # A width whose chroma rows are padded (line_size > width).
    crop = frame.copy()
    narrow = width - 18
    source = av.VideoFrame.from_ndarray(
        np.concatenate(
            [
                crop[:height, :narrow].reshape(-1),
                planes(crop)[1][:, : narrow // 2].reshape(-1),
                planes(crop)[2][:, : narrow // 2].reshape(-1),
            ]
        ).reshape(height * 3 // 2, narrow),
        format="yuv420p",
    )
    assert any(p.line_size > p.width for p in source.planes)
    narrow_grade = Grade(
        prompt,
        FrameSize(narrow, height),
        source=lab_stats([stats_copy(rgb) for rgb in iter_key_frames(inputs.video, 8)]),
        reference=lab_stats([load_rgb(inputs.reference)]),
        palette=[stats_copy(rgb) for rgb in iter_key_frames(inputs.video, 8)],
    )
    contiguous = narrow_grade.apply_i420(np.asarray(source.to_ndarray(format="yuv420p"), np.uint8))
    out = av.VideoFrame(narrow, height, "yuv420p")
    narrow_grade.apply_planes(yuv420p_planes(source), yuv420p_planes(out))
    assert np.array_equal(out.to_ndarray(format="yuv420p"), contiguous)
