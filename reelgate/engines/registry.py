"""Engines by name. Heavy engines are imported only when asked for."""

from __future__ import annotations

from reelgate.config import Settings
from reelgate.core.errors import EngineUnavailable
from reelgate.engines.base import Engine

ENGINE_NAMES = ("preview",)


def load_engine(name: str, settings: Settings) -> Engine:
    if name == "preview":
        from reelgate.engines.preview import PreviewEngine

        return PreviewEngine(long_side=settings.preview_long_side)
    raise EngineUnavailable(
        f"unknown engine {name!r}; this build provides: {', '.join(ENGINE_NAMES)}"
    )
