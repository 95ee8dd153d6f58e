"""Render seeds derived from the request, so the same request renders the same video."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def request_seed(model: str, params: dict[str, Any]) -> int:
    """The request's own ``seed`` (a reelgate extension) when it has one; otherwise a 32-bit
    seed from the model and its canonical (key-sorted JSON) parameters."""
    given = params.get("seed")
    if isinstance(given, int) and not isinstance(given, bool) and 0 <= given < 2**32:
        return given
    canonical = json.dumps({"model": model, "params": params}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4], "big")
