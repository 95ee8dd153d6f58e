"""The ``preview`` engine: a deterministic preview renderer for CPUs (see ``engine.py``)."""

from reelgate.engines.preview.engine import DEFAULT_LONG_SIDE, FPS, PreviewEngine

__all__ = ["DEFAULT_LONG_SIDE", "FPS", "PreviewEngine"]
