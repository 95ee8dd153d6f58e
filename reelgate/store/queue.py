"""All queue SQL in one place: claim, heartbeat, guarded transitions, sweeping.

Read this module to know the queue's database contract:

* ``claim_next`` is one statement on PostgreSQL: the candidate task is locked ``FOR UPDATE
  SKIP LOCKED``, its key's ``running_tasks`` is raised only while below its concurrency (the
  key's row is waited for, and the condition checked again on the row as committed), and the
  task and its event are written. On SQLite the same steps run as separate statements inside
  ``BEGIN IMMEDIATE``, which already holds the database's single write lock. Either way two
  workers can never start more tasks of one key than its concurrency allows. A task whose
  ``run_after`` (a fault-injected queue delay) is still ahead is not a candidate yet.
* ``enqueue`` writes a submitted task, its event and its price taken from the key, likewise in
  one statement on PostgreSQL.
* After the claim, a task changes status only through the verbs ``finish``, ``fail``,
  ``hand_back`` (workers), ``requeue_expired``, ``fail_expired`` (the sweeper) and ``cancel``
  (its owner). All of them go through one guarded update, ``_transition``: it updates ``WHERE
  status = <expected>`` (and, for workers, ``AND worker_id = <me>``), so a late or duplicate
  worker can never overwrite a terminal state; it checks the move against
  ``ALLOWED_TRANSITIONS``, keeps the key's running counter and coins in step, writes a
  ``task_events`` row and, for a task that ends and has a ``webhookUrl``, its outbox event.
  Each verb returns None when the guard did not match. Each transaction locks the key's row
  last, since the key's other claims, submits and transitions wait for it.
* ``renew_lease`` is the heartbeat: it extends a lease only while the task is still RUNNING for
  the same worker, so a worker learns from it that its task was cancelled or swept."""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Select,
    String,
    Table,
    Text,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as cast_as
from sqlalchemy.orm import Session

from reelgate.core.errors import InvalidTransition, ReelgateError
from reelgate.core.status import ALLOWED_TRANSITIONS, TaskStatus
from reelgate.store import outbox, repo, wakeup
from reelgate.store.tables import ApiKey, Task, TaskEvent, WorkerRow, utcnow

_TASKS = cast(Table, Task.__table__)
_KEYS = cast(Table, ApiKey.__table__)
_EVENTS = cast(Table, TaskEvent.__table__)


@dataclass(frozen=True)
class ClaimedTask:
    id: int
    api_key_id: int
    model: str
    params: dict[str, Any]
    attempts: int
    #: A remote engine's state from an earlier attempt (None for a task never started).
    checkpoint: dict[str, Any] | None = None
    #: The key's fault injection settings (``api_keys.faults``), read in the claim.
    faults: dict[str, Any] | None = None


def add_event(
    session: Session,
    task_id: int,
    from_status: TaskStatus | None,
    to_status: TaskStatus,
    actor: str,
    detail: str = "",
    *,
    at: datetime | None = None,
) -> None:
    session.connection().execute(
        insert(_EVENTS),  # values as parameters: see repo.insert_task
        {
            "task_id": task_id,
            "at": at or utcnow(),
            "from_status": from_status.value if from_status else None,
            "to_status": to_status.value,
            "actor": actor,
            "detail": detail[:2000],
        },
    )


def _events_of(task_id: Any, **columns: Any) -> Any:
    """A CTE writing one event per row of ``task_id``'s CTE (a statement's own task), with
    ``columns`` (at, from_status, to_status, actor, detail) as SQL expressions."""
    return (
        insert(_EVENTS)
        .from_select(["task_id", *columns], select(task_id, *columns.values()))
        .cte("event")
    )


#: The columns a submit writes (every other one takes its default).
_SUBMITTED = (
    "id",
    "api_key_id",
    "model",
    "params",
    "status",
    "error_code",
    "error_message",
    "progress",
    "attempts",
    "max_attempts",
    "reserved_coins",
    "idempotency_key",
    "created_at",
    "webhook_url",
    "links_base_url",
    "run_after",
)


def _postgres_enqueue() -> Select[Any]:
    """A submit's writes in one statement: the task, its first event, the key's coins (only
    while the key is enabled, has them, and has room in its queue) and, once that is paid, the
    announcement to idle workers. ``paid`` is NULL when the key update found no such key."""
    task = (
        insert(_TASKS)
        .values({name: bindparam(f"new_{name}", type_=_TASKS.c[name].type) for name in _SUBMITTED})
        .returning(*_TASKS.c)
        .cte("task")
    )
    event = _events_of(
        task.c.id,
        at=task.c.created_at,
        from_status=null(),
        to_status=task.c.status,
        actor=literal("api"),
        detail=bindparam("event_detail", type_=String()),
    )
    # The statement's own INSERT is not visible to its subqueries (one snapshot): the key's
    # queue has room when it held fewer than queue_cap tasks before this one.
    key = (
        update(_KEYS)
        .where(
            _KEYS.c.id == bindparam("paying_key"),
            _KEYS.c.coins >= bindparam("price", type_=BigInteger()),
            _KEYS.c.disabled.is_(False),
            repo.queued_up_to("paying_key", "room").scalar_subquery() < bindparam("room"),
        )
        .values(coins=_KEYS.c.coins - bindparam("price", type_=BigInteger()))
        .returning(_KEYS.c.id)
        .cte("key")
    )
    notify = func.pg_notify(literal(wakeup.CHANNEL), literal(""))
    return (
        select(
            task,
            key.c.id.label("paid"),
            case((key.c.id.is_not(None), notify)).label("announced"),
        )
        .select_from(task.outerjoin(key, true()))
        .add_cte(event)
    )


_POSTGRES_ENQUEUE = _postgres_enqueue()


def enqueue(session: Session, *, detail: str, queue_cap: int, **values: Any) -> tuple[Task, bool]:
    """Write a new QUEUED task (``values``: the columns of ``_SUBMITTED``) and its first event,
    and take its price (``reserved_coins``) from its key. Returns the task as stored (detached)
    and whether it was paid for: False when the key's balance is short, the key is disabled or
    its queue (this task included) is past ``queue_cap`` (``repo.why_refused`` says which);
    the caller then rolls the transaction back. Idle workers are told once it commits.

    The key's row is locked last (on PostgreSQL, from this statement to the commit only), since
    the key's other submits, claims and finishes wait for it.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One round trip: BEGIN and COMMIT are the only others. No parameter is named after a
        # column: SQLAlchemy would add it to the SET clause of the key's UPDATE.
        parameters = {
            **{f"new_{name}": value for name, value in values.items()},
            "event_detail": detail,
            "paying_key": values["api_key_id"],
            "price": values["reserved_coins"],
            "room": queue_cap,
        }
        row = connection.execute(_POSTGRES_ENQUEUE, parameters).one()
        stored = row._asdict()
        paid = stored.pop("paid") is not None
        stored.pop("announced")
        return Task(**stored), paid
    task = repo.insert_task(session, **values)
    add_event(session, task.id, None, TaskStatus.QUEUED, "api", detail, at=task.created_at)
    paid = repo.take_coins(session, task.api_key_id, task.reserved_coins, queue_cap=queue_cap)
    return task, paid


def _claim_candidate() -> Select[Any]:
    """The oldest runnable QUEUED task (id and key): its key has a free concurrency slot and
    is not disabled, and its ``run_after`` (a fault-injected queue delay) is unset or past."""
    return (
        select(_TASKS.c.id, _TASKS.c.api_key_id)
        .join(_KEYS, _KEYS.c.id == _TASKS.c.api_key_id)
        .where(
            _TASKS.c.status == TaskStatus.QUEUED.value,
            _KEYS.c.running_tasks < _KEYS.c.concurrency,
            _KEYS.c.disabled.is_(False),
            or_(
                _TASKS.c.run_after.is_(None),
                _TASKS.c.run_after <= bindparam("now", type_=DateTime()),
            ),
        )
        .order_by(_TASKS.c.id)
        .limit(1)
    )


_CLAIMED_VALUES: dict[str, Any] = {
    "status": TaskStatus.RUNNING.value,
    "worker_id": bindparam("worker_id"),
    "lease_expires_at": bindparam("lease_until", type_=DateTime()),
    "attempts": _TASKS.c.attempts + 1,
    "started_at": func.coalesce(_TASKS.c.started_at, bindparam("now", type_=DateTime())),
    "progress": 0.0,
}
_CLAIMED_COLUMNS = (
    _TASKS.c.id,
    _TASKS.c.api_key_id,
    _TASKS.c.model,
    _TASKS.c.params,
    _TASKS.c.attempts,
    _TASKS.c.checkpoint,
)


def _postgres_claim() -> Select[Any]:
    """The whole claim as one statement (one round trip), for PostgreSQL.

    The candidate task's row is locked with ``SKIP LOCKED`` (two workers never wait for each
    other's task); its key's row is *not* skipped but waited for: it is held only for the
    moment another transaction of that key takes (a submit's coins, a claim, a finish), and
    skipping it made every claim come back empty while one key's tasks were being submitted.
    After that wait PostgreSQL checks the key's free slot and ``disabled`` again on the row
    as committed, so a claim never exceeds the key's concurrency. When that check fails, the
    key update returns nothing and so nothing else changes either.
    """
    candidate = _claim_candidate().with_for_update(skip_locked=True, of=_TASKS).cte("candidate")
    key = (
        update(_KEYS)
        .where(
            _KEYS.c.id == candidate.c.api_key_id,
            _KEYS.c.running_tasks < _KEYS.c.concurrency,
            _KEYS.c.disabled.is_(False),
        )
        .values(running_tasks=_KEYS.c.running_tasks + 1)
        .returning(_KEYS.c.id, _KEYS.c.faults)
        .cte("key")
    )
    claimed = (
        update(_TASKS)
        .where(_TASKS.c.id == candidate.c.id, _TASKS.c.api_key_id == key.c.id)
        .values(**_CLAIMED_VALUES)
        .returning(*_CLAIMED_COLUMNS)
        .cte("claimed")
    )
    event = _events_of(
        claimed.c.id,
        at=bindparam("now", type_=DateTime()),
        from_status=literal(TaskStatus.QUEUED.value),
        to_status=literal(TaskStatus.RUNNING.value),
        actor=bindparam("worker_id"),
        detail=literal("attempt ") + cast_as(claimed.c.attempts, String),
    )
    return (
        select(claimed, key.c.faults)
        .join_from(claimed, key, key.c.id == claimed.c.api_key_id)
        .add_cte(event)
    )


_SQLITE_CLAIM = (
    update(_TASKS)
    .where(
        _TASKS.c.id == _claim_candidate().with_only_columns(_TASKS.c.id).scalar_subquery(),
        _TASKS.c.status == TaskStatus.QUEUED.value,
    )
    .values(**_CLAIMED_VALUES)
    .returning(*_CLAIMED_COLUMNS)
)
_SQLITE_KEY_TAKEN = (
    update(_KEYS)
    .where(_KEYS.c.id == bindparam("key_id"))
    .values(running_tasks=_KEYS.c.running_tasks + 1)
    .returning(_KEYS.c.faults)
)
_POSTGRES_CLAIM = _postgres_claim()


def claim_next(session: Session, worker_id: str, lease_seconds: float) -> ClaimedTask | None:
    """Move the oldest runnable QUEUED task to RUNNING for ``worker_id``; None if there is none.

    Runnable: its key has a free concurrency slot and is not disabled, and its ``run_after``
    (a fault-injected queue delay) is unset or past. The statements are built once, with their
    values as parameters: a claim is the queue's hottest statement.
    """
    now = utcnow()
    values = {
        "now": now,
        "worker_id": worker_id,
        "lease_until": now + timedelta(seconds=lease_seconds),
    }
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        row = connection.execute(_POSTGRES_CLAIM, values).first()
        if row is None:
            return None
        faults = row.faults
    else:
        # SQLite: the transaction already holds the database's one write lock (BEGIN
        # IMMEDIATE), so the statements cannot interleave with another claim.
        row = connection.execute(_SQLITE_CLAIM, values).first()
        if row is None:
            return None
        faults = connection.execute(_SQLITE_KEY_TAKEN, {"key_id": row.api_key_id}).scalar_one()
        add_event(
            session,
            row.id,
            TaskStatus.QUEUED,
            TaskStatus.RUNNING,
            worker_id,
            f"attempt {row.attempts}",
            at=now,
        )
    return ClaimedTask(
        row.id,
        row.api_key_id,
        row.model,
        dict(row.params),
        row.attempts,
        dict(row.checkpoint) if row.checkpoint is not None else None,
        dict(faults) if faults else None,
    )


#: ``save_checkpoint``'s default: leave the task's remote key as it is.
KEEP: Any = object()


def save_checkpoint(
    session: Session,
    task_id: int,
    *,
    worker_id: str,
    checkpoint: dict[str, Any],
    remote_key: str | None = KEEP,
) -> bool:
    """Record a remote engine's state on the task it is running; False if it is not ours.

    Remote engines call this *before* anything that costs money (a paid submit), so a task
    resumed elsewhere reads where it was. ``remote_key`` takes (a fingerprint) or gives back
    (None) a slot of the upstream key pool, in the same statement.
    """
    values: dict[str, Any] = {"checkpoint": checkpoint}
    if remote_key is not KEEP:
        values["remote_key"] = remote_key
    return _update_own_running_task(session, task_id, worker_id, values)


def _update_own_running_task(
    session: Session, task_id: int, worker_id: str, values: dict[str, Any]
) -> bool:
    """Set ``values`` on a task that is RUNNING for ``worker_id``; False when it is not."""
    row = session.execute(
        update(Task)
        .where(
            Task.id == task_id,
            Task.worker_id == worker_id,
            Task.status == TaskStatus.RUNNING.value,
        )
        .values(**values)
        .returning(Task.id)
    ).first()
    return row is not None


def remote_slots_in_use(session: Session) -> dict[str, int]:
    """Upstream key fingerprint -> tasks holding one of its slots (queued or running here)."""
    rows = session.execute(
        select(Task.remote_key, func.count())
        .where(
            Task.remote_key.is_not(None),
            Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]),
        )
        .group_by(Task.remote_key)
    ).all()
    return {str(key): int(count) for key, count in rows}


def cancelled_remote_tasks(
    session: Session, *, keys: Collection[str], limit: int = 50
) -> list[tuple[int, dict[str, Any]]]:
    """(id, checkpoint) of cancelled tasks that still hold a slot of one of ``keys``: their
    remote job may still run, and the engine those keys belong to must cancel it there (see
    ``forget_remote``). Each engine asks for its own keys only."""
    rows = session.execute(
        select(Task.id, Task.checkpoint)
        .where(Task.status == TaskStatus.CANCEL.value, Task.remote_key.in_(list(keys)))
        .order_by(Task.id)
        .limit(limit)
    ).all()
    return [(row.id, dict(row.checkpoint or {})) for row in rows]


def forget_remote(session: Session, task_id: int) -> None:
    """The task's remote job needs nothing more from us: free its upstream slot for good."""
    session.execute(update(Task).where(Task.id == task_id).values(remote_key=None))


def task_status(session: Session, task_id: int) -> TaskStatus | None:
    status = session.execute(select(Task.status).where(Task.id == task_id)).scalar_one_or_none()
    return None if status is None else TaskStatus(status)


@dataclass(frozen=True)
class Transitioned:
    id: int
    api_key_id: int
    reserved_coins: int


# -- transitions: the only ways a task changes status after its claim ----------------------


def finish(
    session: Session,
    task_id: int,
    *,
    worker_id: str,
    results: list[dict[str, str | int]],
    charge: int | None = None,
    detail: str = "",
) -> Transitioned | None:
    """RUNNING -> SUCCESS for the worker that holds the task, with its stored ``results``.

    ``charge`` is the final price (default: the reservation); it never exceeds the reservation,
    and the difference goes back to the key. None when the task is no longer this worker's.
    """
    return _transition(
        session,
        task_id,
        expected=TaskStatus.RUNNING,
        to=TaskStatus.SUCCESS,
        actor=worker_id,
        detail=detail,
        worker_id=worker_id,
        charge=charge,
        results=results,
        progress=1.0,
    )


def fail(
    session: Session, task_id: int, *, worker_id: str, error: ReelgateError
) -> Transitioned | None:
    """RUNNING -> FAILED with ``error``'s code and message; the reservation is refunded.

    None when the task is no longer this worker's.
    """
    return _transition(
        session,
        task_id,
        expected=TaskStatus.RUNNING,
        to=TaskStatus.FAILED,
        actor=worker_id,
        detail=error.message,
        worker_id=worker_id,
        error_code=error.code,
        error_message=error.message,
    )


def hand_back(session: Session, task_id: int, *, worker_id: str) -> Transitioned | None:
    """RUNNING -> QUEUED from a worker shutting down, without charging the task an attempt."""
    return _transition(
        session,
        task_id,
        expected=TaskStatus.RUNNING,
        to=TaskStatus.QUEUED,
        actor=worker_id,
        detail="handed back at worker shutdown",
        worker_id=worker_id,
        attempts=ONE_ATTEMPT_LESS,
    )


def requeue_expired(
    session: Session, task_id: int, *, now: datetime, attempts: int, actor: str
) -> Transitioned | None:
    """RUNNING -> QUEUED for a task whose lease is still expired at ``now``.

    The lease is checked again in the update, so a worker that renewed it meanwhile keeps it.
    """
    return _transition(
        session,
        task_id,
        expected=TaskStatus.RUNNING,
        to=TaskStatus.QUEUED,
        actor=actor,
        detail=f"lease expired on attempt {attempts}",
        lease_expired_by=now,
    )


def fail_expired(
    session: Session, task_id: int, *, now: datetime, error: ReelgateError, actor: str
) -> Transitioned | None:
    """RUNNING -> FAILED with ``error`` for a task whose lease is still expired at ``now``."""
    return _transition(
        session,
        task_id,
        expected=TaskStatus.RUNNING,
        to=TaskStatus.FAILED,
        actor=actor,
        detail=error.message,
        lease_expired_by=now,
        error_code=error.code,
        error_message=error.message,
    )


def cancel(
    session: Session,
    task_id: int,
    *,
    expected: TaskStatus,
    actor: str,
    detail: str = "cancelled by its owner",
) -> Transitioned | None:
    """``expected`` (QUEUED or RUNNING) -> CANCEL; the reservation is refunded.

    A RUNNING task's worker learns it at its next heartbeat and stops the render. None when the
    task was no longer ``expected``; InvalidTransition when ``expected`` cannot be cancelled.
    """
    return _transition(
        session,
        task_id,
        expected=expected,
        to=TaskStatus.CANCEL,
        actor=actor,
        detail=detail,
        error_code="",
        error_message="",
    )


def _transition(
    session: Session,
    task_id: int,
    *,
    expected: TaskStatus,
    to: TaskStatus,
    actor: str,
    detail: str = "",
    worker_id: str | None = None,
    charge: int | None = None,
    lease_expired_by: datetime | None = None,
    **values: Any,
) -> Transitioned | None:
    """Change a task's status if, and only if, it is still ``expected``.

    Only the task's own worker matches when ``worker_id`` is given, and only a task whose lease
    ran out before ``lease_expired_by`` when that is given. Returns None when the guard did not
    match (someone else moved the task first). ``charge`` is the price to keep on SUCCESS
    (default: the reservation); FAILED and CANCEL refund it all. ``values`` are further columns
    to set.
    """
    if (expected, to) not in ALLOWED_TRANSITIONS:
        raise InvalidTransition(f"{expected.value} -> {to.value} is not a task transition")
    now = utcnow()
    if to in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCEL):
        values.setdefault("finished_at", now)
    if to is not TaskStatus.RUNNING:
        values.setdefault("lease_expires_at", None)
    if to is TaskStatus.QUEUED:
        values.setdefault("worker_id", None)
        values.setdefault("progress", 0.0)
    if to in (TaskStatus.FAILED, TaskStatus.CANCEL):
        values["consumed_coins"] = 0
    elif to is TaskStatus.SUCCESS and charge is not None:
        values["charge"] = charge  # the kept price: the lesser of it and the reservation
    one_attempt_less = values.get("attempts") is ONE_ATTEMPT_LESS
    if one_attempt_less:
        del values["attempts"]
    shape = _Shape(
        expected,
        to,
        by_worker=worker_id is not None,
        by_lease=lease_expired_by is not None,
        values=tuple(sorted(values)),
        one_attempt_less=one_attempt_less,
    )
    parameters = {
        **{f"set_{name}": value for name, value in values.items()},
        "task_id": task_id,
        "by_worker": worker_id,
        "by_lease": lease_expired_by,
        "event_at": now,
        "event_actor": actor,
        "event_detail": detail[:2000],
    }
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        row = connection.execute(_one_statement(shape), parameters).first()
    else:
        row = _step_by_step(session, shape, parameters)
    if row is None:
        return None
    if to.is_terminal and row.webhook_url:
        # In this transaction: a task never ends without its event, nor has an event without
        # having ended.
        outbox.enqueue(session, task_id=row.id, api_key_id=row.api_key_id, url=row.webhook_url)
    return Transitioned(row.id, row.api_key_id, row.reserved_coins)


#: ``hand_back``'s value of ``attempts``: one less than the task has (the claim is not counted).
ONE_ATTEMPT_LESS: Any = object()


@dataclass(frozen=True)
class _Shape:
    """What a transition's statements depend on, apart from their parameters: they are built
    once per shape (a handful: one per verb) and then only run."""

    expected: TaskStatus
    to: TaskStatus
    by_worker: bool
    by_lease: bool
    values: tuple[str, ...]
    one_attempt_less: bool

    @property
    def frees_a_slot(self) -> bool:
        """A slot of the key's concurrency frees when a RUNNING task moves on."""
        return self.expected is TaskStatus.RUNNING


@functools.cache
def _task_update(shape: _Shape) -> Any:
    """The guarded update of the task, returning what the rest of the transition needs."""
    statement = update(_TASKS).where(
        _TASKS.c.id == bindparam("task_id"), _TASKS.c.status == shape.expected.value
    )
    if shape.by_worker:
        statement = statement.where(_TASKS.c.worker_id == bindparam("by_worker"))
    if shape.by_lease:
        statement = statement.where(
            _TASKS.c.lease_expires_at < bindparam("by_lease", type_=DateTime())
        )
    values: dict[str, Any] = {"status": shape.to.value}
    for name in shape.values:
        if name == "charge":
            reserved, charge = _TASKS.c.reserved_coins, bindparam("set_charge", type_=BigInteger())
            values["consumed_coins"] = case((reserved < charge, reserved), else_=charge)
        else:
            values[name] = bindparam(f"set_{name}", type_=_TASKS.c[name].type)
    if shape.one_attempt_less:
        values["attempts"] = _TASKS.c.attempts - 1
    if shape.to is TaskStatus.SUCCESS and "charge" not in shape.values:
        values["consumed_coins"] = _TASKS.c.reserved_coins  # the reservation is the price
    return statement.values(values).returning(*_MOVED_COLUMNS)


_MOVED_COLUMNS = (
    _TASKS.c.id,
    _TASKS.c.api_key_id,
    _TASKS.c.reserved_coins,
    _TASKS.c.consumed_coins,
    _TASKS.c.webhook_url,
)


def _refund(reserved: Any, consumed: Any) -> Any:
    """Coins going back to the key: what was reserved and not kept. ``consumed`` is set when a
    task ends (the price kept; 0 when FAILED or CANCEL) and NULL before, when nothing goes
    back."""
    return reserved - (reserved if consumed is None else consumed)


def _sql_refund(reserved: Any, consumed: Any) -> Any:
    """``_refund`` in SQL."""
    return reserved - func.coalesce(consumed, reserved)


def _wakes_workers(to: TaskStatus, frees_a_slot: bool, running: int, concurrency: int) -> bool:
    """Whether idle workers are told once this commits: the task is claimable again, or its
    key had no free slot until now, so a task of that key may have waited for this one. (A
    worker whose own render ended claims again without being told.)"""
    return to is TaskStatus.QUEUED or (frees_a_slot and running >= concurrency - 1)


@functools.cache
def _one_statement(shape: _Shape) -> Any:
    """The task's update, its event, the key's coins and running count and, when due, the
    wake-up of idle workers, in one statement for PostgreSQL (one round trip; the key's row is
    locked from it to the commit only)."""
    task = _task_update(shape).cte("task")
    key = (
        update(_KEYS)
        .where(_KEYS.c.id == task.c.api_key_id)
        .values(
            running_tasks=_KEYS.c.running_tasks - int(shape.frees_a_slot),
            coins=_KEYS.c.coins + _sql_refund(task.c.reserved_coins, task.c.consumed_coins),
        )
        .returning(_KEYS.c.id, _KEYS.c.running_tasks, _KEYS.c.concurrency)
        .cte("key")
    )
    written = _events_of(
        task.c.id,
        at=bindparam("event_at", type_=DateTime()),
        from_status=literal(shape.expected.value),
        to_status=literal(shape.to.value),
        actor=bindparam("event_actor", type_=String()),
        detail=bindparam("event_detail", type_=Text()),
    )
    # ``_wakes_workers`` in SQL: pg_notify, like NOTIFY, is delivered once this commits.
    notify = func.pg_notify(literal(wakeup.CHANNEL), literal(""))
    if shape.to is TaskStatus.QUEUED:
        announced: Any = notify
    elif shape.frees_a_slot:
        announced = case((key.c.running_tasks >= key.c.concurrency - 1, notify))
    else:
        announced = null()
    return (
        select(task, announced.label("announced"))
        .join_from(task, key, key.c.id == task.c.api_key_id)
        .add_cte(written)
    )


@functools.cache
def _key_update(frees_a_slot: bool) -> Any:
    return (
        update(_KEYS)
        .where(_KEYS.c.id == bindparam("key_id"))
        .values(
            running_tasks=_KEYS.c.running_tasks - int(frees_a_slot),
            coins=_KEYS.c.coins + bindparam("refund", type_=BigInteger()),
        )
        .returning(_KEYS.c.running_tasks, _KEYS.c.concurrency)
    )


def _step_by_step(session: Session, shape: _Shape, parameters: dict[str, Any]) -> Any:
    """``_one_statement`` as separate statements (SQLite: the transaction holds the
    database's one write lock, so nothing interleaves)."""
    connection = session.connection()
    row = connection.execute(_task_update(shape), parameters).first()
    if row is None:
        return None
    add_event(
        session,
        row.id,
        shape.expected,
        shape.to,
        parameters["event_actor"],
        parameters["event_detail"],
        at=parameters["event_at"],
    )
    key = connection.execute(
        _key_update(shape.frees_a_slot),
        {"key_id": row.api_key_id, "refund": _refund(row.reserved_coins, row.consumed_coins)},
    ).one()
    if _wakes_workers(shape.to, shape.frees_a_slot, key.running_tasks, key.concurrency):
        wakeup.announce(session)
    return row


def renew_lease(
    session: Session, task_id: int, worker_id: str, lease_seconds: float, progress: float | None
) -> bool:
    """Extend our lease; False means the task is no longer ours (cancelled, or swept)."""
    values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = progress
    return _update_own_running_task(session, task_id, worker_id, values)


def expired_leases(session: Session, now: datetime, limit: int = 100) -> list[tuple[int, int, int]]:
    """(task id, attempts, max attempts) of RUNNING tasks whose lease ran out."""
    rows = session.execute(
        select(Task.id, Task.attempts, Task.max_attempts)
        .where(Task.status == TaskStatus.RUNNING.value, Task.lease_expires_at < now)
        .order_by(Task.id)
        .limit(limit)
    ).all()
    return [(r.id, r.attempts, r.max_attempts) for r in rows]


def register_worker(session: Session, worker_id: str, hostname: str, pid: int) -> None:
    now = utcnow()
    session.execute(
        insert(WorkerRow).values(
            id=worker_id, hostname=hostname, pid=pid, started_at=now, last_seen_at=now
        )
    )


def touch_worker(session: Session, worker_id: str) -> None:
    session.execute(
        update(WorkerRow).where(WorkerRow.id == worker_id).values(last_seen_at=utcnow())
    )


def unregister_worker(session: Session, worker_id: str) -> None:
    session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))


def forget_silent_workers(session: Session, older_than: datetime) -> None:
    session.execute(delete(WorkerRow).where(WorkerRow.last_seen_at < older_than))
