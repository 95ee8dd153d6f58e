"""The transitions allowed between task statuses (the statuses themselves are the wire's)."""

from __future__ import annotations

from reelgate.wire.status import TaskStatus

__all__ = ["ALLOWED_TRANSITIONS", "TaskStatus"]

#: Every transition the store may perform. RUNNING -> QUEUED is the sweeper handing back a task
#: whose lease expired (or a worker shutting down); QUEUED -> FAILED covers inputs rejected
#: before any worker ran them.
ALLOWED_TRANSITIONS: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {
        (TaskStatus.QUEUED, TaskStatus.RUNNING),
        (TaskStatus.QUEUED, TaskStatus.CANCEL),
        (TaskStatus.QUEUED, TaskStatus.FAILED),
        (TaskStatus.RUNNING, TaskStatus.SUCCESS),
        (TaskStatus.RUNNING, TaskStatus.FAILED),
        (TaskStatus.RUNNING, TaskStatus.CANCEL),
        (TaskStatus.RUNNING, TaskStatus.QUEUED),
    }
)
