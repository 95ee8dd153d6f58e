"""Retention's SQL: the finished tasks and uploaded files whose time is up, claimed so that two
sweepers never take the same ones, and marked once their files are deleted.

* Tasks: ``claim_tasks`` locks the tasks that finished before the cutoff and are not expired
  yet (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent sweepers take disjoint batches;
  on SQLite the write transaction's single lock serialises them). The caller deletes their
  files, then ``expire_tasks`` marks them, in that transaction: a sweeper that dies in between
  leaves the batch to the next one, and deleting a file again is no error.
* Uploads: every upload of the same bytes shares one file, deleted only once the newest of
  those uploads is older than the cutoff. ``claim_files`` takes a file only with every live
  upload row of it locked (else it leaves the file alone); ``lock_file`` (called before an
  upload row is added) locks the same rows, so an upload of a file that is being deleted waits
  for the deletion to commit, and then stores the file again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from reelgate.store.tables import Task, Upload


@dataclass(frozen=True)
class ExpiredTask:
    id: int
    finished_at: datetime
    #: The task's result files as stored: ``{"key": …, "outputType": …, "size": …}`` (size
    #: only for results stored since it was recorded).
    results: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ExpiredFile:
    storage_key: str
    size: int
    #: The live upload rows that share it.
    upload_ids: tuple[int, ...]
    #: When the oldest of them was uploaded.
    oldest: datetime


# -- tasks ---------------------------------------------------------------------------------


def _tasks_due(cutoff: datetime) -> Select[Any]:
    # Only a terminal transition sets ``finished_at``.
    return (
        select(Task.id, Task.finished_at, Task.results)
        .where(Task.expired_at.is_(None), Task.finished_at < cutoff)
        .order_by(Task.finished_at, Task.id)
    )


def due_tasks(session: Session, cutoff: datetime) -> list[ExpiredTask]:
    """Every task that finished before ``cutoff`` and is not expired yet (nothing locked)."""
    return [_expired_task(row) for row in session.execute(_tasks_due(cutoff))]


def claim_tasks(session: Session, cutoff: datetime, limit: int) -> list[ExpiredTask]:
    """Up to ``limit`` of the oldest ``due_tasks``, locked until the transaction ends; tasks
    another sweeper holds are skipped."""
    statement = _tasks_due(cutoff).limit(limit).with_for_update(skip_locked=True, of=Task)
    return [_expired_task(row) for row in session.execute(statement)]


def expire_tasks(session: Session, task_ids: Collection[int], now: datetime) -> None:
    """Mark tasks expired. Their idempotency keys are forgotten with them: the same key makes a
    new task from now on."""
    session.execute(
        update(Task).where(Task.id.in_(list(task_ids))).values(expired_at=now, idempotency_key=None)
    )


def _expired_task(row: Any) -> ExpiredTask:
    return ExpiredTask(row.id, row.finished_at, tuple(row.results or ()))


# -- uploaded files ------------------------------------------------------------------------


def _only_old_uploads(cutoff: datetime) -> list[Any]:
    """Live uploads from before ``cutoff`` of files with no live upload since."""
    newer = aliased(Upload)
    return [
        Upload.expired_at.is_(None),
        Upload.created_at < cutoff,
        ~exists().where(
            newer.storage_key == Upload.storage_key,
            newer.expired_at.is_(None),
            newer.created_at >= cutoff,
        ),
    ]


def due_files(session: Session, cutoff: datetime) -> list[ExpiredFile]:
    """Every uploaded file whose newest live upload came before ``cutoff``, oldest first
    (nothing locked)."""
    rows = session.execute(
        select(Upload.id, Upload.storage_key, Upload.size, Upload.created_at)
        .where(*_only_old_uploads(cutoff))
        .order_by(Upload.created_at, Upload.id)
    )
    files: dict[str, list[Any]] = {}
    for row in rows:
        files.setdefault(row.storage_key, []).append(row)
    return [
        ExpiredFile(key, max(r.size for r in same), tuple(r.id for r in same), same[0].created_at)
        for key, same in files.items()
    ]


def claim_files(session: Session, cutoff: datetime, limit: int) -> list[ExpiredFile]:
    """Up to ``limit`` of the oldest ``due_files``, each with every live upload row of it
    locked until the transaction ends. A file some of whose rows another transaction holds (a
    sweeper, or an upload of the same bytes), or which gained a row meanwhile, is left out."""
    due = session.execute(
        select(
            Upload.storage_key,
            func.count().label("uploads"),
            func.max(Upload.size).label("size"),
            func.min(Upload.created_at).label("oldest"),
        )
        .where(*_only_old_uploads(cutoff))
        .group_by(Upload.storage_key)
        .order_by(func.min(Upload.created_at), Upload.storage_key)
        .limit(limit)
    ).all()
    if not due:
        return []
    locked: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    for upload_id, key, created_at in session.execute(
        select(Upload.id, Upload.storage_key, Upload.created_at)
        .where(Upload.storage_key.in_([row.storage_key for row in due]))
        .where(Upload.expired_at.is_(None))
        .order_by(Upload.id)
        .with_for_update(skip_locked=True)
    ):
        locked[key].append((upload_id, created_at))
    claimed = []
    for row in due:
        rows = locked[row.storage_key]
        if len(rows) == row.uploads and all(created < cutoff for _, created in rows):
            ids = tuple(upload_id for upload_id, _ in rows)
            claimed.append(ExpiredFile(row.storage_key, row.size, ids, row.oldest))
    return claimed


def expire_uploads(session: Session, upload_ids: Collection[int], now: datetime) -> None:
    session.execute(update(Upload).where(Upload.id.in_(list(upload_ids))).values(expired_at=now))


def lock_file(session: Session, storage_key: str) -> None:
    """Wait until no sweeper holds the live upload rows of ``storage_key`` (PostgreSQL; SQLite's
    write transaction already excludes every other writer), and hold them until the
    transaction ends."""
    session.execute(
        select(Upload.id)
        .where(Upload.storage_key == storage_key, Upload.expired_at.is_(None))
        .with_for_update()
    ).all()
