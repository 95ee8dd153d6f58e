"""Repositories: every SELECT and UPDATE outside the queue's own statements."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Select, Table, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reelgate.core.status import TaskStatus
from reelgate.store import wakeup
from reelgate.store.tables import ApiKey, Meta, Task, Upload, UpstreamKey, utcnow

#: How many leading characters of a key are stored in the clear, to tell keys apart.
KEY_PREFIX_LENGTH = 6


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    id: int
    name: str
    #: The key itself; shown once, never stored.
    api_key: str
    coins: int
    concurrency: int
    webhook_secret: str
    admin: bool = False


def create_key(
    session: Session,
    *,
    name: str,
    coins: int,
    concurrency: int,
    queue_cap: int,
    admin: bool = False,
) -> NewKey:
    # 32 lower-case hex characters, the shape of a RunningHub key.
    api_key = secrets.token_hex(16)
    webhook_secret = secrets.token_hex(32)
    key_id = session.execute(
        insert(ApiKey)
        .values(
            name=name,
            key_hash=hash_key(api_key),
            key_prefix=api_key[:KEY_PREFIX_LENGTH],
            coins=coins,
            concurrency=concurrency,
            queue_cap=queue_cap,
            running_tasks=0,
            disabled=False,
            webhook_secret=webhook_secret,
            created_at=utcnow(),
            admin=admin,
        )
        .returning(ApiKey.id)
    ).scalar_one()
    return NewKey(key_id, name, api_key, coins, concurrency, webhook_secret, admin)


@dataclass(frozen=True)
class KeyOfRequest:
    """What authenticating a request reads of its key."""

    id: int
    name: str
    concurrency: int
    queue_cap: int
    faults: dict[str, Any] | None
    disabled: bool
    admin: bool


def key_of_request(session: Session, api_key: str) -> KeyOfRequest | None:
    """The key ``api_key`` as a request's authentication needs it: one indexed row, read without
    the ORM's bookkeeping (a quarter of the time), since every request reads it."""
    row = session.connection().execute(_KEY_OF_REQUEST, {"key_hash": hash_key(api_key)}).first()
    return None if row is None else KeyOfRequest(*row)


def find_key(session: Session, api_key: str) -> ApiKey | None:
    return session.execute(
        select(ApiKey).where(ApiKey.key_hash == hash_key(api_key))
    ).scalar_one_or_none()


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.execute(select(ApiKey).order_by(ApiKey.id)).scalars())


def count_keys(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(ApiKey)).scalar_one())


def keys_named(session: Session, name: str) -> list[ApiKey]:
    """The keys an operator may mean by ``name``, trying in turn: the key itself, its prefix
    (which may be all digits), its id. More than one only when several keys share the prefix."""
    name = name.strip()
    exact = find_key(session, name) if name else None
    if exact is not None:
        return [exact]
    if len(name) == KEY_PREFIX_LENGTH:
        by_prefix = session.execute(
            select(ApiKey).where(ApiKey.key_prefix == name).order_by(ApiKey.id)
        ).scalars()
        found = list(by_prefix)
        if found:
            return found
    if name.isdigit() and len(name) < 10:
        by_id = session.get(ApiKey, int(name))
        if by_id is not None:
            return [by_id]
    return []


def set_key_disabled(session: Session, key: ApiKey, disabled: bool) -> None:
    """Disable (or enable) one key."""
    key.disabled = disabled
    session.flush()


def set_key_faults(session: Session, key: ApiKey, faults: dict[str, Any] | None) -> None:
    """Set (or, with None, remove) one key's fault injection settings."""
    key.faults = faults
    session.flush()


def add_coins(session: Session, key_id: int, amount: int, *, most: int) -> int | None:
    """Add ``amount`` coins (negative: remove them) to a key's balance in one update; the new
    balance, or None when it would fall below 0 or rise above ``most`` (nothing changes then).

    One relative update rather than a balance read and written back: submits reserve and
    refunds return coins concurrently, and none of them is lost.
    """
    # Each bound is written so that no side of it passes the column's range (BIGINT).
    within = ApiKey.coins <= most - amount if amount >= 0 else ApiKey.coins >= -amount
    row = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, within)
        .values(coins=ApiKey.coins + amount)
        .returning(ApiKey.coins)
    ).first()
    return None if row is None else int(row[0])


# Statements a request runs each time, built once and run on the table (no ORM bookkeeping).
_KEYS = cast(Table, ApiKey.__table__)
_keys = _KEYS.c
_KEY_OF_REQUEST = select(
    _keys.id,
    _keys.name,
    _keys.concurrency,
    _keys.queue_cap,
    _keys.faults,
    _keys.disabled,
    _keys.admin,
).where(_keys.key_hash == bindparam("key_hash"))


def queued_up_to(key_parameter: str, cap_parameter: str) -> Select[Any]:
    """Counts a key's queued tasks, but no further than the limit it is compared with: a submit
    then reads at most that many index entries, however long the key's queue has grown. The
    key and the limit are the named parameters."""
    return select(func.count()).select_from(
        select(literal(1))
        .select_from(Task)
        .where(Task.api_key_id == bindparam(key_parameter), Task.status == TaskStatus.QUEUED.value)
        .limit(bindparam(cap_parameter))
        .subquery()
    )


_QUEUED_UP_TO = queued_up_to("key_id", "cap")


_TAKE_COINS = (
    update(_KEYS)
    .where(
        _keys.id == bindparam("key_id"),
        _keys.coins >= bindparam("amount"),
        _keys.disabled.is_(False),
        # The key's queued tasks, the new one included, counted up to queue_cap + 1 ("cap").
        _QUEUED_UP_TO.scalar_subquery() < bindparam("cap"),
    )
    .values(coins=_keys.coins - bindparam("amount"))
    .returning(_keys.id)
)


def take_coins(session: Session, key_id: int, amount: int, *, queue_cap: int) -> bool:
    """Reserve ``amount`` coins for a task just written as QUEUED, in one update; False when
    the balance is short, the key is disabled, or the key's queue (the new task included) is
    past ``queue_cap`` (``why_refused`` says which).

    The disabled flag is checked in this update, which waits for the row lock that disabling
    takes: a submit racing with ``keys disable`` either lands before it (and its task is
    cancelled with the others) or is refused, never left queued on a disabled key.
    """
    row = session.connection().execute(
        _TAKE_COINS, {"key_id": key_id, "amount": amount, "cap": queue_cap + 1}
    )
    return row.first() is not None


def why_refused(
    session: Session, key_id: int, queue_cap: int
) -> Literal["queue", "disabled", "balance"]:
    """Why ``take_coins`` refused: ``"queue"``, ``"disabled"`` or ``"balance"`` (in that order)."""
    connection = session.connection()
    queued = connection.execute(_QUEUED_UP_TO, {"key_id": key_id, "cap": queue_cap + 1})
    if int(queued.scalar_one()) > queue_cap:
        return "queue"
    if key_disabled(session, key_id):
        return "disabled"
    return "balance"


def key_balance(session: Session, key_id: int) -> int:
    return int(session.execute(select(ApiKey.coins).where(ApiKey.id == key_id)).scalar_one())


def key_disabled(session: Session, key_id: int) -> bool:
    return bool(session.execute(select(ApiKey.disabled).where(ApiKey.id == key_id)).scalar_one())


def status_counts(session: Session, key_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Task.status, func.count())
        .where(
            Task.api_key_id == key_id,
            Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]),
        )
        .group_by(Task.status)
    ).all()
    return {status: int(count) for status, count in rows}


_TASKS = cast(Table, Task.__table__)
_TASK_BY_ID = select(*_TASKS.c).where(_TASKS.c.id == bindparam("task_id"))


def get_task(session: Session, task_id: int) -> Task | None:
    """The task as stored, detached (a copy to read: changing it changes nothing stored).

    Read with a prebuilt Core statement rather than the ORM: every poll of a task comes here,
    and loading the row into the session cost twice as much."""
    row = session.connection().execute(_TASK_BY_ID, {"task_id": task_id}).first()
    return None if row is None else Task(**row._asdict())


def task_states(
    session: Session,
    *,
    statuses: Collection[TaskStatus] | None = None,
    key_id: int | None = None,
    task_ids: Collection[int] | None = None,
) -> list[tuple[int, TaskStatus]]:
    """(id, status) of the tasks that match every filter given, oldest first."""
    query = select(Task.id, Task.status).order_by(Task.id)
    if statuses is not None:
        query = query.where(Task.status.in_([status.value for status in statuses]))
    if key_id is not None:
        query = query.where(Task.api_key_id == key_id)
    if task_ids is not None:
        query = query.where(Task.id.in_(list(task_ids)))
    return [(row.id, TaskStatus(row.status)) for row in session.execute(query)]


def list_tasks(
    session: Session,
    *,
    limit: int,
    key_id: int | None = None,
    statuses: Collection[TaskStatus] = (),
    model: str | None = None,
    since: datetime | None = None,
    before: int | None = None,
    retained_since: datetime | None = None,
) -> list[tuple[Task, ApiKey]]:
    """Tasks of every key (or of one), newest first, each with its key; empty filters match all.

    Ids are snowflakes, which grow with time: ordering by id is ordering by creation, on the
    primary key's index. ``before`` (a task id) pages back: only older tasks. With
    ``retained_since``, only tasks still within their retention: not swept, and not ended before
    that time.
    """
    query = select(Task, ApiKey).join(ApiKey, ApiKey.id == Task.api_key_id)
    if key_id is not None:
        query = query.where(Task.api_key_id == key_id)
    if statuses:
        query = query.where(Task.status.in_([status.value for status in statuses]))
    if model is not None:
        query = query.where(Task.model == model)
    if since is not None:
        query = query.where(Task.created_at >= since)
    if before is not None:
        query = query.where(Task.id < before)
    if retained_since is not None:
        query = query.where(
            Task.expired_at.is_(None),
            or_(Task.finished_at.is_(None), Task.finished_at >= retained_since),
        )
    rows = session.execute(query.order_by(Task.id.desc()).limit(limit))
    return [(task, key) for task, key in rows]


def find_by_idempotency_key(session: Session, key_id: int, idempotency_key: str) -> Task | None:
    return session.execute(
        select(Task).where(Task.api_key_id == key_id, Task.idempotency_key == idempotency_key)
    ).scalar_one_or_none()


def forget_idempotency_key(session: Session, task_id: int) -> None:
    session.execute(update(Task).where(Task.id == task_id).values(idempotency_key=None))


#: The new task as written, defaults included, so that a submit need not read it back.
_INSERT_TASK = insert(_TASKS).returning(*_TASKS.c)


def insert_task(session: Session, **values: Any) -> Task:
    """Write a new task; returns it (detached) as stored."""
    # Values as parameters of a constant statement, not built into it: the statement is then
    # compiled once, and a submit does not pay for turning twenty values into SQL expressions.
    row = session.connection().execute(_INSERT_TASK, values).one()
    wakeup.announce(session)  # a new QUEUED task: idle workers claim it once this commits
    return Task(**row._asdict())


def add_upload(session: Session, **values: Any) -> None:
    session.execute(insert(Upload).values(**values))


def get_meta(session: Session, key: str) -> str | None:
    return session.execute(select(Meta.value).where(Meta.key == key)).scalar_one_or_none()


def ensure_meta(session: Session, key: str, make_value: Any) -> str:
    """Read a server-wide value, creating it on first use (races settle on the first writer)."""
    value = get_meta(session, key)
    if value is not None:
        return value
    try:
        with session.begin_nested():
            session.execute(insert(Meta).values(key=key, value=make_value()))
    except IntegrityError:
        pass
    value = get_meta(session, key)
    assert value is not None
    return value


def upstream_keys(session: Session) -> list[UpstreamKey]:
    return list(session.execute(select(UpstreamKey).order_by(UpstreamKey.label)).scalars())


def tasks_page(
    session: Session,
    key_id: int,
    *,
    limit: int,
    after: int | None,
    ascending: bool,
    ended_since: datetime | None = None,
) -> list[Task]:
    """One key's live tasks in id order (creation order: ids are snowflakes), ``limit`` of them,
    starting past the task ``after`` (a cursor: older ones when descending, newer ascending).
    Expired tasks are left out, and with ``ended_since`` those that ended before it (their
    retention is over, swept or not)."""
    query = select(Task).where(Task.api_key_id == key_id, Task.expired_at.is_(None))
    if ended_since is not None:
        query = query.where(or_(Task.finished_at.is_(None), Task.finished_at >= ended_since))
    if after is not None:
        query = query.where(Task.id > after if ascending else Task.id < after)
    order = Task.id.asc() if ascending else Task.id.desc()
    return list(session.execute(query.order_by(order).limit(limit)).scalars())
