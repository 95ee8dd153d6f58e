"""The dashboard's reads: a task's history, which tasks changed since a cursor, the workers seen
lately and the fleet's open tasks.

The cursor of "what changed" is the id of the last ``task_events`` row seen: every status change
(a submit too) writes one, in the transaction that makes it. Progress is not an event (it moves
with every heartbeat), so open tasks are compared by their progress as well; they are few, and
read through the (key, status) index.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reelgate.core.status import TaskStatus
from reelgate.store.tables import ApiKey, Task, TaskEvent, WorkerRow

#: Statuses a task can still leave.
OPEN = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)


def history(session: Session, task_id: int) -> list[TaskEvent]:
    """A task's events, oldest first."""
    query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
    return list(session.execute(query).scalars())


def last_event_id(session: Session) -> int:
    """The newest event's id (0 when there is none): where a new watcher starts."""
    return int(session.execute(select(func.coalesce(func.max(TaskEvent.id), 0))).scalar_one())


def changed_since(
    session: Session, after: int, *, key_id: int | None, limit: int
) -> tuple[int, set[int]]:
    """(the next cursor, the tasks of ``key_id`` (None: of every key) with an event after
    ``after``).

    The cursor moves to the newest event of any key, so that a quiet key's watcher does not
    read the same events of other keys again at every poll; to the last one read when ``limit``
    cut the reading short.
    """
    newest = last_event_id(session)
    if newest <= after:
        return after, set()
    query = (
        select(TaskEvent.id, TaskEvent.task_id)
        .where(TaskEvent.id > after, TaskEvent.id <= newest)
        .order_by(TaskEvent.id)
        .limit(limit)
    )
    if key_id is not None:
        query = query.join(Task, Task.id == TaskEvent.task_id).where(Task.api_key_id == key_id)
    rows = session.execute(query).all()
    cursor = int(rows[-1].id) if len(rows) >= limit else newest
    return cursor, {int(row.task_id) for row in rows}


def open_tasks(session: Session, *, key_id: int | None) -> dict[int, tuple[str, float]]:
    """Status and progress of the QUEUED and RUNNING tasks of ``key_id`` (None: of every key)."""
    query = select(Task.id, Task.status, Task.progress).where(Task.status.in_(OPEN))
    if key_id is not None:
        query = query.where(Task.api_key_id == key_id)
    return {int(r.id): (str(r.status), float(r.progress)) for r in session.execute(query)}


def tasks_with_keys(session: Session, task_ids: Collection[int]) -> list[tuple[Task, ApiKey]]:
    """The tasks named (those that exist), newest first, each with its key."""
    if not task_ids:
        return []
    query = (
        select(Task, ApiKey)
        .join(ApiKey, ApiKey.id == Task.api_key_id)
        .where(Task.id.in_(list(task_ids)))
        .order_by(Task.id.desc())
    )
    return [(task, key) for task, key in session.execute(query)]


def open_counts(session: Session) -> dict[str, int]:
    """QUEUED and RUNNING tasks of every key, by status (both always present)."""
    counts = dict.fromkeys(OPEN, 0)
    query = select(Task.status, func.count()).where(Task.status.in_(OPEN)).group_by(Task.status)
    for status, count in session.execute(query).all():
        counts[str(status)] = int(count)
    return counts


def workers_seen(session: Session, since: datetime) -> list[WorkerRow]:
    """Workers whose last heartbeat came after ``since``, the latest first."""
    query = (
        select(WorkerRow)
        .where(WorkerRow.last_seen_at >= since)
        .order_by(WorkerRow.last_seen_at.desc(), WorkerRow.id)
    )
    return list(session.execute(query).scalars())
