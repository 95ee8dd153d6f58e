"""Task statuses: exactly RunningHub's values, defined once for the server and the SDK."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Where a task is in its life (contract §5); the only values reelgate ever sends."""

    #: Accepted and waiting for a worker (or for the key's concurrency to free up).
    QUEUED = "QUEUED"
    #: Claimed by a worker that holds a live lease; being generated.
    RUNNING = "RUNNING"
    #: Finished; ``results`` holds the output files.
    SUCCESS = "SUCCESS"
    #: Finished with an error; ``errorCode``/``errorMessage`` say why.
    FAILED = "FAILED"
    #: Cancelled by its owner before it finished.
    CANCEL = "CANCEL"

    @property
    def is_terminal(self) -> bool:
        """SUCCESS, FAILED and CANCEL never change again."""
        return self in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCEL)

    @classmethod
    def from_wire(cls, value: object) -> TaskStatus:
        """A status as a server sent it; ``CREATE`` (the developer kit's pre-queue state) is
        QUEUED. Raises ``ValueError`` on anything else, as RunningHub's own clients do."""
        text = str(value if value is not None else "").strip().upper()
        return cls.QUEUED if text == "CREATE" else cls(text)
