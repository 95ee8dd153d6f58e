"""Where a clip's sound comes from when its video model makes none.

One small interface, so a generative audio model (e.g. MMAudio on a GPU host) can stand in for
the CPU fallback: the preview engine's procedural synth, keyed on the prompt's words. A task's
history names the source that was used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from reelgate.engines.preview.sound import synthesize


class SoundSource(Protocol):
    #: How the task's history names it.
    name: str

    def track(
        self, prompt: str, seconds: float, seed: int, cuts: Sequence[float]
    ) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Stereo float samples at the output's rate, ``seconds`` long; ``cuts`` are the times
        where shots meet."""
        ...


class ProceduralSound:
    name = "the preview engine's procedural synth (no audio model is enabled)"

    def track(
        self, prompt: str, seconds: float, seed: int, cuts: Sequence[float]
    ) -> np.ndarray[Any, np.dtype[np.float32]]:
        return synthesize(prompt, seconds, seed, cuts)
