"""The preview engine as the rest of reelgate sees it."""

from __future__ import annotations

import pytest

from reelgate.config import Settings
from reelgate.core.catalogue import Family
from reelgate.engines.base import Engine
from reelgate.engines.preview import PreviewEngine
from reelgate.engines.registry import load_engine


def test_is_an_engine_for_both_families() -> None:
    engine = PreviewEngine()
    assert isinstance(engine, Engine)
    assert engine.name == "preview"
    assert engine.capabilities.families == {Family.IMAGE_TO_VIDEO, Family.VIDEO_EDIT}
    assert engine.capabilities.fps == 24
    ready, why = engine.ready()
    assert ready and "preview renderer" in why


def test_registry_builds_it_from_settings() -> None:
    engine = load_engine("preview", Settings(preview_long_side=640))
    assert isinstance(engine, PreviewEngine)
    assert engine.long_side == 640


@pytest.mark.parametrize("long_side", [0, 63, 321])
def test_rejects_unusable_sizes(long_side: int) -> None:
    with pytest.raises(ValueError, match="long_side"):
        PreviewEngine(long_side=long_side)
