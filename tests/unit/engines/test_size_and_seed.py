"""The ``size`` and ``seed`` extensions: checked on the wire, honoured by the preview engine and
by the seed every engine renders with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelgate.core.catalogue import get_model
from reelgate.core.errors import InvalidParameters
from reelgate.core.seeds import request_seed
from reelgate.engines.mediaio import probe
from reelgate.engines.preview import PreviewEngine
from reelgate.engines.preview.frames import FrameSize, fit_to_frame, load_rgb
from reelgate.wire.requests import parse_size
from tests.unit.engines.preview_support import Inputs, decode_rgb, i2v, psnr, render

I2V = "kling-video-o3-std/image-to-video"


def body(**extra: object) -> dict[str, object]:
    return {"prompt": "p", "firstImageUrl": "https://example.com/a.png", **extra}


@pytest.mark.parametrize(
    ("text", "size"),
    [("1280x720", (1280, 720)), ("64X3840", (64, 3840)), (" 96x96 ", (96, 96))],
)
def test_a_size_is_width_by_height_in_even_pixels(text: str, size: tuple[int, int]) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["1280", "1280x", "x720", "129x720", "62x720", "3842x720", "1e3x9"]
)
def test_other_sizes_are_refused_naming_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)
    model = get_model(I2V)
    assert model is not None
    with pytest.raises(InvalidParameters, match="size"):
        model.parse(body(size=text))


def test_size_and_seed_are_kept_with_the_task_and_seed_is_the_render_seed() -> None:
    model = get_model(I2V)
    assert model is not None
    params = model.parse(body(size="1280X720", seed=42)).parameters()
    assert (params["size"], params["seed"]) == ("1280x720", 42)
    assert request_seed(I2V, params) == 42
    derived = model.parse(body()).parameters()
    assert "size" not in derived and "seed" not in derived
    assert request_seed(I2V, derived) == request_seed(I2V, dict(derived))
    for refused in (-1, 2**32, "7", True):
        with pytest.raises(InvalidParameters, match="seed"):
            model.parse(body(seed=refused))


def test_the_preview_renders_the_asked_size_covering_it_with_the_first_frame(
    inputs: Inputs, tmp_path: Path
) -> None:
    engine = PreviewEngine(long_side=320)  # ignored when a size is asked for
    out = render(engine, i2v(inputs, size=(96, 128)), tmp_path)
    info = probe(out)
    assert (info.width, info.height) == (96, 128)
    # The first frame is the image scaled to cover 96x128 and cropped at its centre.
    expected = fit_to_frame(load_rgb(inputs.first), FrameSize(96, 128))
    first = decode_rgb(out)[0]
    assert psnr(np.asarray(first), expected) > 25
