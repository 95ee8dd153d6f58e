"""When to ask again: the polling and retry schedules, without any I/O.

``Client`` and ``AsyncClient`` drive these with their own sleep, so both follow exactly the same
rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from reelgate.client._config import PollPolicy, RetryPolicy
from reelgate.client._errors import ReelgateError, ResponseLost, RetryableError
from reelgate.client._models import TaskInfo, TaskStatus


class Poller:
    """The schedule of one ``wait()``: the next delay after each answer, within the deadline."""

    def __init__(
        self,
        policy: PollPolicy,
        timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self.started = clock()
        self.deadline = None if timeout is None else self.started + max(0.0, timeout)
        self._status: TaskStatus | None = None
        self._interval = 0.0
        self._errors = 0

    @property
    def waited(self) -> float:
        return self._clock() - self.started

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self._clock()

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def after(self, info: TaskInfo) -> float:
        """Seconds to sleep before the next query, given the last answer (0 at the deadline)."""
        self._errors = 0
        p = self.policy
        if info.status is not self._status:
            self._status = info.status
            self._interval = (
                p.queued_initial if info.status is TaskStatus.QUEUED else p.running_initial
            )
        else:
            ceiling = p.queued_max if info.status is TaskStatus.QUEUED else p.running_max
            self._interval = min(ceiling, max(self._interval * p.growth, p.min_interval))
        delay = self._interval
        if info.poll_after is not None:
            delay = min(p.max_interval, max(p.min_interval, info.poll_after))
        return self._bounded(delay)

    def after_error(self, error: ReelgateError) -> float | None:
        """Seconds to sleep after a failed query, or ``None`` when ``wait()`` must give up."""
        if not (error.retryable or isinstance(error, ResponseLost)):
            return None
        self._errors += 1
        if self._errors > self.policy.max_consecutive_errors:
            return None
        retry_after = error.retry_after if isinstance(error, RetryableError) else None
        delay = (
            retry_after
            if retry_after is not None
            else min(
                self.policy.max_interval, self.policy.running_initial * 2 ** (self._errors - 1)
            )
        )
        return self._bounded(delay)

    def _bounded(self, delay: float) -> float:
        remaining = self.remaining()
        return delay if remaining is None else max(0.0, min(delay, remaining))


class Retrier:
    """The retry budget of one call: whether and when to try again after a failure."""

    def __init__(
        self,
        policy: RetryPolicy,
        may_retry: Callable[[ReelgateError], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._may_retry = may_retry
        self._clock = clock
        self._started = clock()
        self.attempt = 0

    def next_delay(self, error: ReelgateError) -> float | None:
        """Seconds before the next attempt, or ``None`` to give up and raise ``error``."""
        self.attempt += 1
        if self.attempt >= self.policy.max_attempts or not self._may_retry(error):
            return None
        retry_after = error.retry_after if isinstance(error, RetryableError) else None
        delay = self.policy.delay(self.attempt, retry_after)
        if self._clock() - self._started + delay > self.policy.budget:
            return None
        return delay
