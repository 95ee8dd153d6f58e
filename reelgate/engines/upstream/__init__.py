"""The ``upstream`` engine: forwards tasks to RunningHub (or another reelgate) durably."""

from reelgate.engines.upstream.engine import UpstreamEngine

__all__ = ["UpstreamEngine"]
