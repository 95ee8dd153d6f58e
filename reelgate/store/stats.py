"""What ``/metrics`` reads of the database: tasks by model and status with their durations, the
queue, the webhook outbox and the workers. Read-only statements, each answered by an index or
limited to a range of task ids.

Durations are the database's own arithmetic on a task's times, so they are the same whichever
process asks, on whichever host the task ran: a run is ``finished_at - started_at`` (from its
first claim to its end, requeues included), a dispatch ``started_at - created_at`` (from its
submit to its first claim). A negative difference (clocks of two hosts apart) counts as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Float, case, cast, extract, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from reelgate.core.status import TaskStatus
from reelgate.store import outbox
from reelgate.store.tables import Task, WebhookDelivery, WorkerRow

#: Statuses a task never leaves.
FINAL = tuple(s.value for s in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCEL))
#: Statuses a task may still leave.
OPEN = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)
WEBHOOK_STATUSES = (outbox.PENDING, outbox.RETRYING, outbox.SUCCESS, outbox.FAILED)


@dataclass(frozen=True)
class Distribution:
    """Observed durations in Prometheus' histogram layout: how many were at most each bound,
    their count and their sum."""

    bounds: tuple[float, ...]
    at_most: tuple[int, ...]
    count: int
    total: float

    def plus(self, other: Distribution) -> Distribution:
        return Distribution(
            self.bounds,
            tuple(a + b for a, b in zip(self.at_most, other.at_most, strict=True)),
            self.count + other.count,
            self.total + other.total,
        )


@dataclass(frozen=True)
class TaskTally:
    """The tasks of a range of ids: how many by (model, status), and how long they took."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (model, final status) -> runs of the tasks that ended after being claimed.
    run_seconds: dict[tuple[str, str], Distribution] = field(default_factory=dict)
    #: model -> dispatch latencies of the tasks that were claimed at least once.
    dispatch_seconds: dict[str, Distribution] = field(default_factory=dict)

    def plus(self, other: TaskTally) -> TaskTally:
        return TaskTally(
            _summed(self.counts, other.counts, lambda a, b: a + b),
            _summed(self.run_seconds, other.run_seconds, Distribution.plus),
            _summed(self.dispatch_seconds, other.dispatch_seconds, Distribution.plus),
        )


def _summed(a: dict[Any, Any], b: dict[Any, Any], add: Any) -> dict[Any, Any]:
    merged = dict(a)
    for name, value in b.items():
        merged[name] = add(merged[name], value) if name in merged else value
    return merged


def tally_tasks(
    session: Session,
    *,
    ids_from: int,
    ids_below: int | None,
    run_bounds: Sequence[float],
    dispatch_bounds: Sequence[float],
) -> TaskTally:
    """Count and time the tasks with ``ids_from <= id < ids_below`` in one GROUP BY."""
    dialect = session.get_bind().dialect.name
    ran = case(
        (Task.status.in_(FINAL), _seconds(dialect, Task.started_at, Task.finished_at)),
        else_=None,
    )
    dispatched = _seconds(dialect, Task.created_at, Task.started_at)
    query = select(
        Task.model,
        Task.status,
        func.count(),
        *_histogram_columns(ran, run_bounds),
        *_histogram_columns(dispatched, dispatch_bounds),
    ).where(Task.id >= ids_from)
    if ids_below is not None:
        query = query.where(Task.id < ids_below)
    tally = TaskTally()
    for row in session.execute(query.group_by(Task.model, Task.status)).all():
        model, status, count = str(row[0]), str(row[1]), int(row[2])
        width = 2 + len(run_bounds)
        ran_in = _histogram(run_bounds, row[3 : 3 + width])
        dispatched_in = _histogram(dispatch_bounds, row[3 + width :])
        part = TaskTally(
            {(model, status): count},
            {(model, status): ran_in} if ran_in.count else {},
            {model: dispatched_in} if dispatched_in.count else {},
        )
        tally = tally.plus(part)
    return tally


def _seconds(dialect: str, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, at least 0; NULL when either is NULL."""
    if dialect == "sqlite":
        difference: ColumnElement[Any] = (func.julianday(end) - func.julianday(start)) * 86400.0
    else:
        difference = cast(extract("epoch", end - start), Float)
    return case((difference < 0, 0.0), else_=difference)


def _histogram_columns(value: ColumnElement[Any], bounds: Sequence[float]) -> list[Any]:
    """COUNT, SUM and one "at most" count per bound, of the non-NULL values of ``value``."""
    return [
        func.count(value),
        func.coalesce(func.sum(value), 0.0),
        *(func.sum(case((value <= bound, 1), else_=0)) for bound in bounds),
    ]


def _histogram(bounds: Sequence[float], columns: Sequence[Any]) -> Distribution:
    count, total, *at_most = columns
    return Distribution(
        tuple(bounds), tuple(int(n or 0) for n in at_most), int(count), float(total)
    )


def lowest_open_id(session: Session) -> int | None:
    """The smallest id of a task that is still QUEUED or RUNNING (None: there is none)."""
    value = session.execute(select(func.min(Task.id)).where(Task.status.in_(OPEN))).scalar()
    return None if value is None else int(value)


def queue_depth(session: Session) -> tuple[int, datetime | None]:
    """(QUEUED tasks, since when the oldest of them may be claimed)."""
    waiting_since = func.coalesce(Task.run_after, Task.created_at)
    row = session.execute(
        select(func.count(), func.min(waiting_since)).where(Task.status == TaskStatus.QUEUED.value)
    ).one()
    return int(row[0]), row[1]


def webhook_deliveries(session: Session) -> tuple[dict[str, int], datetime | None]:
    """(events by status, every status present; when the oldest undelivered one was written)."""
    counts = dict.fromkeys(WEBHOOK_STATUSES, 0)
    for status, count in session.execute(
        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    ).all():
        counts[str(status)] = int(count)
    oldest = session.execute(
        select(func.min(WebhookDelivery.created_at)).where(
            WebhookDelivery.status.in_((outbox.PENDING, outbox.RETRYING))
        )
    ).scalar()
    return counts, oldest


def workers(session: Session, seen_since: datetime) -> tuple[int, int]:
    """(workers whose heartbeat came after ``seen_since``, registered workers that are silent)."""
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((WorkerRow.last_seen_at >= seen_since, 1), else_=0)), 0),
        ).select_from(WorkerRow)
    ).one()
    alive = int(row[1])
    return alive, int(row[0]) - alive
