"""Task statuses, exactly RunningHub's values, and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    #: Accepted and waiting for a worker (or for the key's concurrency to free up).
    QUEUED = "QUEUED"
    #: Claimed by a worker that holds a live lease.
    RUNNING = "RUNNING"
    #: Finished; ``results`` holds the output files.
    SUCCESS = "SUCCESS"
    #: Finished with an error; ``errorCode``/``errorMessage`` say why.
    FAILED = "FAILED"
    #: Cancelled by its owner before it finished.
    CANCEL = "CANCEL"


TERMINAL: frozenset[TaskStatus] = frozenset(
    {TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCEL}
)

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
