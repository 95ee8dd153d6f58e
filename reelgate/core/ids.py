"""19-digit, time-ordered task ids (snowflake layout: milliseconds, node, sequence).

RunningHub task ids look like ``"2009191190196789249"``: a decimal string of 19 digits. The
layout used here is Twitter's: 41 bits of milliseconds since 2010-11-04, 10 bits of node id and
12 bits of sequence, which gives 19 digits from 2024 until 2080. The node id is random per
process, so API processes on many hosts do not need to coordinate; a collision between two
processes that drew the same node id in the same millisecond with the same sequence is refused
by the primary key (that submit fails; it is not retried).
"""

from __future__ import annotations

import secrets
import threading
import time

EPOCH_MS = 1288834974657
_NODE_BITS = 10
_SEQUENCE_BITS = 12
_MAX_SEQUENCE = (1 << _SEQUENCE_BITS) - 1


class SnowflakeGenerator:
    def __init__(self, node: int | None = None) -> None:
        self.node = secrets.randbelow(1 << _NODE_BITS) if node is None else node
        if not 0 <= self.node < (1 << _NODE_BITS):
            raise ValueError(f"node must be in [0, {1 << _NODE_BITS})")
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def next_id(self) -> int:
        with self._lock:
            now = int(time.time() * 1000)
            if now < self._last_ms:  # the clock stepped back: keep ids increasing
                now = self._last_ms
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & _MAX_SEQUENCE
                if self._sequence == 0:
                    while now <= self._last_ms:
                        time.sleep(0.0001)
                        now = int(time.time() * 1000)
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                ((now - EPOCH_MS) << (_NODE_BITS + _SEQUENCE_BITS))
                | (self.node << _SEQUENCE_BITS)
                | self._sequence
            )


def is_task_id(value: str) -> bool:
    return len(value) == 19 and value.isdigit()


def first_id_at(unix_seconds: float) -> int:
    """The smallest id a generator makes at ``unix_seconds``: ids below it were made earlier."""
    ms = max(0, int(unix_seconds * 1000) - EPOCH_MS)
    return ms << (_NODE_BITS + _SEQUENCE_BITS)
