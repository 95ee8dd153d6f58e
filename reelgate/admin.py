"""The operator's side of the service: checked key settings, cancelling tasks in bulk and
listing tasks across keys.

``Service`` (``disable_key``, ``cancel_tasks``, ``list_tasks``) runs these inside its
transactions; the CLI (``reelgate keys``, ``reelgate tasks``) only calls ``Service``. Every
cancel goes through ``queue.cancel``, one guarded transition per task, so refunds, the key's
running counter, the task's history and its webhook event are exactly those of an owner's
cancel.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from reelgate.core.errors import InvalidParameters
from reelgate.core.status import TaskStatus
from reelgate.store import queue
from reelgate.store.tables import ApiKey, Task

#: The name column's length.
MAX_KEY_NAME = 200
#: The largest balance the coins column (BIGINT) holds.
MAX_COINS = 2**63 - 1
#: Tasks one key may run at once; far above any real deployment, so a typo is caught.
MAX_KEY_CONCURRENCY = 10_000
#: The most tasks one listing returns.
MAX_TASK_LISTING = 10_000
#: The statuses an operator may cancel, in the order they are tried.
CANCELLABLE = (TaskStatus.QUEUED, TaskStatus.RUNNING)
#: Who the task history says cancelled a task.
ACTOR = "operator"


def checked_key_settings(name: str, coins: int, concurrency: int) -> str:
    """The name to store (trimmed); ``InvalidParameters`` saying what is wrong otherwise."""
    name = name.strip()
    if not name:
        raise InvalidParameters("the key's name cannot be empty")
    if len(name) > MAX_KEY_NAME:
        raise InvalidParameters(
            f"the key's name is {len(name)} characters long; at most {MAX_KEY_NAME}"
        )
    if not name.isprintable():
        raise InvalidParameters("the key's name cannot contain control characters")
    if coins < 0:
        raise InvalidParameters(f"coins cannot be negative, not {coins}")
    if coins > MAX_COINS:
        raise InvalidParameters(f"coins must be at most {MAX_COINS}, not {coins}")
    if concurrency < 1:
        raise InvalidParameters(f"concurrency must be at least 1, not {concurrency}")
    if concurrency > MAX_KEY_CONCURRENCY:
        raise InvalidParameters(
            f"concurrency must be at most {MAX_KEY_CONCURRENCY}, not {concurrency}"
        )
    return name


@dataclass(frozen=True)
class CancelSummary:
    """What one operator's cancel did."""

    #: The tasks cancelled, oldest first.
    cancelled: tuple[int, ...] = ()
    #: How many of them were QUEUED, and how many RUNNING (their workers stop at their next
    #: heartbeat).
    queued: int = 0
    running: int = 0
    #: Coins given back to the tasks' keys (every reservation, in full).
    refunded: int = 0
    #: Tasks selected but not cancelled: their status (not one asked for, or it changed
    #: meanwhile), or None for a task id that names no task.
    skipped: Mapping[int, TaskStatus | None] = field(default_factory=dict)


def cancel_each(
    session: Session,
    candidates: Iterable[tuple[int, TaskStatus]],
    statuses: Collection[TaskStatus],
    *,
    detail: str,
) -> CancelSummary:
    """Cancel each (id, status read) candidate whose status is one of ``statuses``.

    Each task is tried from the status it was read in, then from the others allowed: on
    PostgreSQL a worker may claim a QUEUED task between the read and the cancel, and the
    guarded update then simply does not match.
    """
    cancelled: list[int] = []
    counts = {status: 0 for status in CANCELLABLE}
    refunded = 0
    skipped: dict[int, TaskStatus | None] = {}
    for task_id, read in candidates:
        tries = sorted((s for s in CANCELLABLE if s in statuses), key=lambda s: s is not read)
        for expected in tries:
            moved = queue.cancel(session, task_id, expected=expected, actor=ACTOR, detail=detail)
            if moved is not None:
                cancelled.append(task_id)
                counts[expected] += 1
                refunded += moved.reserved_coins
                break
        else:
            skipped[task_id] = queue.task_status(session, task_id)
    return CancelSummary(
        tuple(cancelled),
        counts[TaskStatus.QUEUED],
        counts[TaskStatus.RUNNING],
        refunded,
        skipped,
    )


def checked_statuses(statuses: Collection[TaskStatus]) -> frozenset[TaskStatus]:
    wanted = frozenset(statuses)
    if not wanted or not wanted <= set(CANCELLABLE):
        raise InvalidParameters("only QUEUED and RUNNING tasks can be cancelled")
    return wanted


@dataclass(frozen=True)
class DisabledKey:
    """A key just disabled, and what happened to its tasks."""

    key: ApiKey
    cancelled: CancelSummary


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks ``Service.list_tasks`` returns; fields left empty match every task."""

    #: A key as ``reelgate keys disable`` names one: the key, its prefix or its id.
    key: str | None = None
    statuses: frozenset[TaskStatus] = frozenset()
    #: A model path, e.g. ``kling-video-o3-pro/image-to-video``.
    model: str | None = None
    #: Created at or after this time (naive means UTC, as stored).
    since: datetime | None = None
    limit: int = 50


@dataclass(frozen=True)
class ListedTask:
    task: Task
    key_name: str
    key_prefix: str


def stored_time(moment: datetime) -> datetime:
    """``moment`` as the tables store times: naive UTC."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
