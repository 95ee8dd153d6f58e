"""Fault injection for integrators: what a key's ``faults`` setting asks the server to get wrong.

An operator sets these on one key (``reelgate keys faults KEY …``) so that the application
behind that key can test its error handling against a server that otherwise behaves exactly as
usual. Every decision is reproducible, so a test can assert that exactly the configured faults
happened:

* task faults (does this task fail? does its webhook delivery fail?) are a deterministic draw
  from the task id and the kind of fault (``draw``), compared with the rate: a rate of 0.25
  fails exactly the tasks whose draw is below 0.25, and ``Faults.fails_task`` says which;
* request faults (is this request answered rate-limited?) follow a counter per key
  (``refuses``): a rate of 0.5 refuses every second request, 1 every request, 0 none.

Keys without faults (``None`` in ``api_keys.faults``) are never touched.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reelgate.core.errors import V2_MESSAGES, ReelgateError

#: The kinds of task fault that ``draw`` tells apart.
FaultKind = Literal["task", "webhook"]

#: The longest delay an operator may set, in seconds (a day: longer is a stuck task, not a test).
MAX_DELAY_SECONDS = 86_400.0


def _rate() -> Any:
    return Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)


def _delay() -> Any:
    return Field(0.0, ge=0.0, le=MAX_DELAY_SECONDS, allow_inf_nan=False)


class Faults(BaseModel):
    """The faults set on one key; every field's default means "behave normally"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Probability (0..1) that a task of this key ends FAILED with ``fail_code``, right after a
    #: worker claims it and without rendering; its coins are refunded as for any failure.
    fail_rate: float = _rate()
    #: The RunningHub code such a task fails with (one of ``V2_MESSAGES``).
    fail_code: str = "1015"
    #: Seconds a new task waits in QUEUED before a worker may claim it.
    queue_delay_seconds: float = _delay()
    #: Probability (0..1) that a request is answered exactly as a rate-limited one (HTTP 429,
    #: ``1003``, ``Retry-After``).
    rate_limit_rate: float = _rate()
    #: Seconds the webhook dispatcher waits before delivering a task's event.
    webhook_delay_seconds: float = _delay()
    #: Probability (0..1) that a delivery attempt of a task's event is treated as failed (and
    #: retried as usual) without being sent.
    webhook_fail_rate: float = _rate()

    @field_validator("fail_code", mode="before")
    @classmethod
    def _documented_code(cls, value: Any) -> Any:
        code = str(value).strip() if isinstance(value, (str, int)) else value
        if code not in V2_MESSAGES:
            raise ValueError(f"must be one of RunningHub's codes: {', '.join(V2_MESSAGES)}")
        return code

    @property
    def active(self) -> bool:
        """Whether any fault is set (a key whose faults are all off is stored as ``None``)."""
        return self != Faults()

    def to_stored(self) -> dict[str, Any] | None:
        """What ``api_keys.faults`` holds: the fields, or None when nothing is set."""
        return self.model_dump() if self.active else None

    @classmethod
    def from_stored(cls, value: dict[str, Any] | None) -> Faults | None:
        """The faults a key's column holds; None for none, and for a value this version cannot
        read (a key is never broken by its fault settings)."""
        if not value:
            return None
        try:
            faults = cls.model_validate(value)
        except ValidationError:
            return None
        return faults if faults.active else None

    def fails_task(self, task_id: int) -> bool:
        """Whether the task ``task_id`` is one that fails."""
        return draw(task_id, "task") < self.fail_rate

    def fails_webhook(self, task_id: int, attempt: int) -> bool:
        """Whether delivery attempt ``attempt`` (from 1) of the task's event fails."""
        return draw(task_id, "webhook", attempt) < self.webhook_fail_rate

    def refuses(self, request_number: int) -> bool:
        """Whether the ``request_number``-th request (from 0) of the key is refused."""
        return refuses(self.rate_limit_rate, request_number)

    def failure(self) -> InjectedFailure:
        """The error a failing task ends with."""
        return InjectedFailure(self.fail_code)


class InjectedFailure(ReelgateError):
    """A task failed by the key's fault settings: RunningHub's code and exact message."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__()


def draw(task_id: int, kind: FaultKind, attempt: int = 0) -> float:
    """A number in [0, 1) fixed by the task, the kind of fault and the attempt.

    SHA-256 rather than ``random``: the same on every process, host and Python version.
    """
    digest = hashlib.sha256(f"{task_id}:{kind}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def refuses(rate: float, request_number: int) -> bool:
    """Whether request ``request_number`` (from 0) is refused at ``rate``: spread evenly, so that
    of any ``n`` requests from the first ``floor(n × rate)`` are refused (1: all, 0: none)."""
    return math.floor((request_number + 1) * rate) > math.floor(request_number * rate)
