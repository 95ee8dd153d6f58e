"""API keys recognised a moment ago, so that a request's key can be answered before its body is
read without a round trip to the database.

Only that early answer is taken from here: the request's own transaction reads the key again
(and counts it against its rate limit), so a key disabled a second ago is still refused, with
the same answer; at worst its body is read first, for ``RECOGNISED_SECONDS`` after the disable.
Keys are held by their hash, never as given.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

#: How long a recognised key skips the early look-up.
RECOGNISED_SECONDS = 10.0
#: Keys remembered at most (past it, the memory starts again empty).
MAX_RECOGNISED = 10_000


class RecognisedKeys:
    def __init__(
        self,
        seconds: float = RECOGNISED_SECONDS,
        *,
        capacity: int = MAX_RECOGNISED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def __contains__(self, api_key: str) -> bool:
        until = self._until.get(_digest(api_key))
        return until is not None and self._clock() < until

    def add(self, api_key: str) -> None:
        with self._lock:
            if len(self._until) >= self.capacity:
                self._until.clear()
            self._until[_digest(api_key)] = self._clock() + self.seconds


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()
