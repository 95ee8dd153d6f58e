"""The dashboard's side of the service: a key's task pages, one task with its history, what
changed since a cursor (the live view), and the admin's keys and fleet.

The dashboard's browser code calls the public API for everything the public API does (submit,
upload, query, price preview, a key's own cancel, account and queue status); this module holds
only what it cannot: listing and watching tasks, and the operator's key administration, which
goes through the same ``Service`` use-cases as ``reelgate keys``. An admin key (``api_keys.admin``)
sees every key's tasks; any other key only its own.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reelgate import admin
from reelgate.admin import DisabledKey, ListedTask
from reelgate.core.catalogue import get_model
from reelgate.core.errors import AdminOnly, InvalidApiKey, InvalidParameters, TaskNotFound
from reelgate.core.status import TaskStatus
from reelgate.retention import is_expired
from reelgate.service import Caller, Service
from reelgate.store import repo, watch
from reelgate.store.repo import NewKey
from reelgate.store.stats import queue_depth
from reelgate.store.tables import ApiKey, Task, TaskEvent, WorkerRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The most tasks one page holds.
MAX_PAGE = 100
#: The most tasks one look at "what changed" returns; the rest come at the next look.
MAX_CHANGES = 200


@dataclass(frozen=True)
class TaskQuery:
    """Which of the caller's tasks a page shows (every key's for an admin, or ``key_id``'s)."""

    statuses: frozenset[TaskStatus] = frozenset()
    #: A catalogue path, e.g. ``kling-video-o3-pro/image-to-video``.
    model: str | None = None
    #: Only for an admin: one key's tasks.
    key_id: int | None = None
    #: Tasks older than this task id (the previous page's ``older``).
    before: int | None = None
    limit: int = 20


@dataclass(frozen=True)
class TaskPage:
    tasks: list[ListedTask]
    #: ``before`` for the next (older) page; None on the last page.
    older: int | None


@dataclass(frozen=True)
class TaskDetail:
    listed: ListedTask
    key_id: int
    events: list[TaskEvent]
    #: The body the task was submitted with, by wire name (what "run again" sends).
    request: dict[str, Any]


@dataclass(frozen=True)
class Changes:
    #: Where the next look starts.
    cursor: int
    #: Tasks whose status or progress changed, newest first.
    tasks: list[ListedTask]
    #: Status and progress of every open task now: the next look compares with these.
    open: dict[int, tuple[str, float]]


@dataclass(frozen=True)
class Fleet:
    queued: int
    running: int
    #: How long the oldest QUEUED task has waited to be claimed (0: none waits).
    oldest_queued_seconds: float
    workers: list[WorkerRow]


class Dashboard:
    """Use-cases of the dashboard's own endpoints; every method takes the authenticated caller
    and decides what it may see."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.db = service.db

    # -- the signed-in key ----------------------------------------------------------------

    def me(self, caller: Caller) -> ApiKey:
        with self.db.read() as session:
            key = session.get(ApiKey, caller.id)
            assert key is not None
            return key

    # -- tasks ----------------------------------------------------------------------------

    def tasks(self, caller: Caller, query: TaskQuery) -> TaskPage:
        """One page of tasks, newest first."""
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidParameters(f"limit must be between 1 and {MAX_PAGE}, not {query.limit}")
        if query.key_id is not None and not caller.admin:
            raise AdminOnly("only an admin key sees other keys' tasks")
        key_id = query.key_id if caller.admin else caller.id
        model = query.model.strip("/") if query.model else None
        with self.db.read() as session:
            rows = repo.list_tasks(
                session,
                limit=query.limit + 1,  # one more says whether an older page exists
                key_id=key_id,
                statuses=query.statuses,
                model=model,
                before=query.before,
                retained_since=self._retained_since(),
            )
        listed = [ListedTask(task, key.name, key.key_prefix) for task, key in rows]
        older = listed[query.limit - 1].task.id if len(listed) > query.limit else None
        return TaskPage(listed[: query.limit], older)

    def task(self, caller: Caller, task_id: Any) -> TaskDetail:
        """A task with its key, history and request: the caller's own (as ``/query`` finds it),
        or any key's for an admin; past its retention, none (as on ``/query``)."""
        own: Task | None = None
        if not caller.admin:
            own = self.service.get_task(caller, task_id)  # ownership and retention, as /query
        with self.db.read() as session:
            task = own or _task_by_id(session, task_id)
            if is_expired(task, self.service.settings.retention.results_seconds):
                raise TaskNotFound(f"task {task.id} has expired")
            key = session.get(ApiKey, task.api_key_id)
            assert key is not None
            events = watch.history(session, task.id)
        return TaskDetail(
            ListedTask(task, key.name, key.key_prefix), key.id, events, submitted_body(task)
        )

    def cancel(self, caller: Caller, task_id: Any) -> TaskDetail:
        """An admin's cancel of any key's task (a key's own cancel is the public API's), with a
        full refund, as ``reelgate tasks cancel`` does it."""
        _require_admin(caller)
        detail = self.task(caller, task_id)
        self.service.cancel_tasks(task_ids=[detail.listed.task.id], statuses=admin.CANCELLABLE)
        return self.task(caller, task_id)

    def cursor(self) -> int:
        """Where a new watcher starts: changes after now."""
        with self.db.read() as session:
            return watch.last_event_id(session)

    def changes(self, caller: Caller, after: int, seen: dict[int, tuple[str, float]]) -> Changes:
        """The caller's tasks (every key's for an admin) that changed since the event ``after``,
        or whose status or progress differs from ``seen`` (what the watcher was last told of
        the open tasks).

        The key is read again: a key disabled while it watches stops being answered.
        """
        key_id = None if caller.admin else caller.id
        with self.db.read() as session:
            key = session.get(ApiKey, caller.id)
            if key is None or key.disabled:
                raise InvalidApiKey("this API key is disabled")
            cursor, changed = watch.changed_since(session, after, key_id=key_id, limit=MAX_CHANGES)
            now_open = watch.open_tasks(session, key_id=key_id)
            changed |= {i for i, state in now_open.items() if seen.get(i) != state}
            # Tasks that were open and are no longer: ended by an event (found above) or gone.
            changed |= {i for i in seen if i not in now_open}
            ids = sorted(changed, reverse=True)[:MAX_CHANGES]
            rows = watch.tasks_with_keys(session, ids)
        return Changes(
            cursor, [ListedTask(task, key.name, key.key_prefix) for task, key in rows], now_open
        )

    # -- keys and fleet (admin only) ------------------------------------------------------

    def keys(self, caller: Caller) -> list[ApiKey]:
        _require_admin(caller)
        return self.service.list_keys()

    def create_key(
        self, caller: Caller, name: str, *, coins: int | None, concurrency: int | None, admin: bool
    ) -> NewKey:
        _require_admin(caller)
        return self.service.create_key(name, coins=coins, concurrency=concurrency, admin=admin)

    def disable_key(self, caller: Caller, key_id: int, *, cancel_running: bool) -> DisabledKey:
        _require_admin(caller)
        if key_id == caller.id:
            raise InvalidParameters("a key cannot disable itself here; use reelgate keys disable")
        return self.service.disable_key(self._name_of(key_id), cancel_running=cancel_running)

    def add_coins(self, caller: Caller, key_id: int, amount: int) -> ApiKey:
        """Add coins to a key (a negative amount takes them away), never below 0."""
        _require_admin(caller)
        if amount == 0 or abs(amount) > admin.MAX_COINS:
            raise InvalidParameters(
                f"the amount must be a non-zero number of coins within ±{admin.MAX_COINS}"
            )
        with self.db.write() as session:
            key = session.get(ApiKey, key_id)
            if key is None:
                raise InvalidParameters(f"no key {key_id}")
            if repo.add_coins(session, key_id, amount, most=admin.MAX_COINS) is None:
                raise InvalidParameters(
                    f"key {key_id} has {key.coins} coins: adding {amount} would leave it "
                    f"{'below 0' if amount < 0 else f'above {admin.MAX_COINS}'}"
                )
            session.refresh(key)
            return key

    def fleet(self, caller: Caller) -> Fleet:
        """Queue depth, running tasks and the workers heard from within a lease."""
        _require_admin(caller)
        now = utcnow()
        lease = timedelta(seconds=self.service.settings.worker.lease_seconds)
        with self.db.read() as session:
            counts = watch.open_counts(session)
            _depth, waiting_since = queue_depth(session)
            workers = watch.workers_seen(session, now - lease)
        return Fleet(
            counts[TaskStatus.QUEUED.value],
            counts[TaskStatus.RUNNING.value],
            _seconds_since(waiting_since, now),
            workers,
        )

    def _retained_since(self) -> datetime | None:
        """Tasks that ended before this time are past their retention (None: kept for ever)."""
        seconds = self.service.settings.retention.results_seconds
        return utcnow() - timedelta(seconds=seconds) if seconds else None

    def _name_of(self, key_id: int) -> str:
        """``key_id`` as ``Service.disable_key`` names a key; refused when that name could
        mean another key (an id of six digits is also a possible prefix)."""
        with self.db.read() as session:
            found = repo.keys_named(session, str(key_id))
        if [key.id for key in found] != [key_id]:
            raise InvalidParameters(f"no key {key_id}, or its id is ambiguous: use the CLI")
        return str(key_id)


def submitted_body(task: Task) -> dict[str, Any]:
    """The JSON body a task was submitted with, by wire name: rebuilt from the stored
    parameters (kept by Python name) and the webhook URL kept beside them. A model outside the
    catalogue was stored as sent."""
    body = dict(task.params)
    spec = get_model(task.model)
    if spec is not None:
        # Stored by an older version with other rules: shown as stored.
        with suppress(ValidationError):
            body = spec.request_type.model_validate(task.params).to_payload()
    if task.webhook_url:
        body["webhookUrl"] = task.webhook_url
    return body


def _task_by_id(session: Session, task_id: Any) -> Task:
    number = _task_number(task_id)
    task = repo.get_task(session, number)
    if task is None:
        raise TaskNotFound(f"no task {number}")
    return task


def _task_number(task_id: Any) -> int:
    text = str(task_id).strip()
    if not text.isdigit() or len(text) > 19 or int(text) >= 2**63:
        raise TaskNotFound(f"no task {text}")
    return int(text)


def _require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise AdminOnly()


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    return 0.0 if moment is None else max(0.0, (now - moment).total_seconds())
