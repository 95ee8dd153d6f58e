"""The grid table: every request length maps onto each model's frame counts and frame rate,
with the output's duration equal to the request's within one frame."""

from __future__ import annotations

import pytest

from reelgate.engines.diffusers.grid import LTX2, WAN, Grid, for_model, plan


@pytest.mark.parametrize("grid", [WAN, LTX2], ids=lambda g: g.name)
@pytest.mark.parametrize("seconds", range(3, 16))
def test_every_duration_gets_its_exact_frame_count_on_the_grid(grid: Grid, seconds: int) -> None:
    passes = plan(grid, [float(seconds)])
    assert sum(p.keep for p in passes) == seconds * grid.fps  # duration within one frame
    for p in passes:
        assert (p.frames - 1) % grid.frame_step == 0 and p.frames <= grid.max_frames
        # A pass renders what it keeps, plus the frame it continues from.
        assert p.keep + (1 if p.continues else 0) <= p.frames
    assert not passes[0].continues and all(p.continues for p in passes[1:])


def test_shots_end_where_their_seconds_say() -> None:
    passes = plan(WAN, [3.0, 4.0, 8.0])
    kept_by_shot: dict[int, int] = {}
    for p in passes:
        kept_by_shot[p.shot] = kept_by_shot.get(p.shot, 0) + p.keep
    assert kept_by_shot == {0: 48, 1: 64, 2: 128}
    assert [p.shot for p in passes] == sorted(p.shot for p in passes)


def test_a_clip_longer_than_one_pass_is_chained() -> None:
    assert [(p.frames, p.keep) for p in plan(WAN, [15.0])] == [(81, 81), (81, 80), (81, 79)]
    assert [(p.frames, p.keep) for p in plan(LTX2, [5.0])] == [(121, 120)]


@pytest.mark.parametrize(
    ("grid", "source", "long_side", "expected"),
    [
        (WAN, (1280, 720), 832, (832, 464)),
        (WAN, (720, 1280), 832, (464, 832)),
        (LTX2, (1280, 720), 768, (768, 448)),
        (WAN, (400, 300), 32, (32, 32)),
    ],
)
def test_sizes_keep_the_aspect_on_the_grid(
    grid: Grid, source: tuple[int, int], long_side: int, expected: tuple[int, int]
) -> None:
    width, height = grid.size(*source, long_side)
    assert (width, height) == expected
    assert width % grid.side_multiple == 0 and height % grid.side_multiple == 0


def test_a_checkpoint_can_change_its_familys_grid() -> None:
    ti2v = for_model("wan-i2v", fps=24, side_multiple=32)  # Wan2.2 TI2V-5B
    assert (ti2v.fps, ti2v.side_multiple, ti2v.frame_step) == (24, 32, 4)
    assert sum(p.keep for p in plan(ti2v, [5.0])) == 120
