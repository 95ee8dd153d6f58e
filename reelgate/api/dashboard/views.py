"""The JSON the dashboard's own endpoints answer, built from the service's rows.

These shapes are the dashboard's, not a public contract: the page and the server ship together.
Names are camelCase, as on the rest of the wire; times are ISO 8601 in UTC with a ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from reelgate.admin import ListedTask
from reelgate.api import answers
from reelgate.dashboard import Fleet, TaskDetail, TaskPage
from reelgate.store.tables import ApiKey, TaskEvent, WorkerRow
from reelgate.wire.responses import ResultItem

#: The start of a prompt that a task list shows.
PROMPT_PREVIEW = 160


class View(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, frozen=True
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def when(moment: datetime | None) -> str | None:
    """A stored time (naive UTC) as the dashboard reads it."""
    return None if moment is None else moment.isoformat(timespec="milliseconds") + "Z"


class TaskItem(View):
    task_id: str
    model: str
    status: str
    progress: float
    key_id: int
    key_name: str
    key_prefix: str
    prompt: str
    #: Seconds of video asked for (image-to-video), or None.
    duration: int | None
    reserved_coins: int
    #: Set once the task ended (0 for a failed or cancelled task).
    charged_coins: int | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error_code: str
    error_message: str

    @classmethod
    def of(cls, listed: ListedTask) -> TaskItem:
        task = listed.task
        prompt = task.params.get("prompt")
        duration = task.params.get("duration")
        return cls(
            task_id=str(task.id),
            model=task.model,
            status=task.status,
            progress=round(task.progress, 4),
            key_id=task.api_key_id,
            key_name=listed.key_name,
            key_prefix=listed.key_prefix,
            prompt=prompt[:PROMPT_PREVIEW] if isinstance(prompt, str) else "",
            duration=duration if isinstance(duration, int) else None,
            reserved_coins=task.reserved_coins,
            charged_coins=task.consumed_coins,
            created_at=when(task.created_at),
            started_at=when(task.started_at),
            finished_at=when(task.finished_at),
            error_code=task.error_code,
            error_message=task.error_message,
        )


class Page(View):
    tasks: list[TaskItem]
    #: ``before`` for the next, older page (None on the last page).
    older: str | None

    @classmethod
    def of(cls, page: TaskPage) -> Page:
        older = str(page.older) if page.older is not None else None
        return cls(tasks=[TaskItem.of(listed) for listed in page.tasks], older=older)


class EventItem(View):
    at: str | None
    from_status: str | None
    to_status: str
    actor: str
    detail: str

    @classmethod
    def of(cls, event: TaskEvent) -> EventItem:
        return cls(
            at=when(event.at),
            from_status=event.from_status,
            to_status=event.to_status,
            actor=event.actor,
            detail=event.detail,
        )


class Detail(View):
    task: TaskItem
    #: Whether the signed-in key owns it (its cancel is then the public API's).
    own: bool
    #: The submitted body, by wire name.
    request: dict[str, Any]
    results: list[dict[str, Any]]
    #: ``usage`` of ``/openapi/v2/query`` once the task ended.
    usage: dict[str, Any] | None
    events: list[EventItem]

    @classmethod
    def of(cls, detail: TaskDetail, *, own: bool, link: answers.ResultLinker) -> Detail:
        task = detail.listed.task
        found: list[ResultItem] = answers.results(task, link) or []
        answer = answers.task_object(task, link)
        return cls(
            task=TaskItem.of(detail.listed),
            own=own,
            request=detail.request,
            results=[item.to_wire() for item in found],
            usage=answer.usage.to_wire() if answer.usage is not None else None,
            events=[EventItem.of(event) for event in detail.events],
        )


class KeyItem(View):
    id: int
    name: str
    prefix: str
    coins: int
    concurrency: int
    queue_cap: int
    running: int
    disabled: bool
    admin: bool
    created_at: str | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyItem:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.key_prefix,
            coins=key.coins,
            concurrency=key.concurrency,
            queue_cap=key.queue_cap,
            running=key.running_tasks,
            disabled=key.disabled,
            admin=key.admin,
            created_at=when(key.created_at),
        )


class NewKeyItem(View):
    #: The key itself: in this answer only, never again.
    api_key: str
    key: KeyItem


class WorkerItem(View):
    id: str
    hostname: str
    pid: int
    started_at: str | None
    last_seen_at: str | None

    @classmethod
    def of(cls, worker: WorkerRow) -> WorkerItem:
        return cls(
            id=worker.id,
            hostname=worker.hostname,
            pid=worker.pid,
            started_at=when(worker.started_at),
            last_seen_at=when(worker.last_seen_at),
        )


class FleetItem(View):
    queued: int
    running: int
    oldest_queued_seconds: float
    workers: list[WorkerItem]

    @classmethod
    def of(cls, fleet: Fleet) -> FleetItem:
        return cls(
            queued=fleet.queued,
            running=fleet.running,
            oldest_queued_seconds=round(fleet.oldest_queued_seconds, 1),
            workers=[WorkerItem.of(worker) for worker in fleet.workers],
        )
